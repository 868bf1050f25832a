//! Permission modes in configuration (`mode`, `file_mode`, `dir_mode`):
//! octal, as a string (`"0644"`, `"644"`, `"0o644"`) or as a number whose
//! digits are read as octal. YAML reads an unquoted `0644` as the string
//! `"0644"` and `644` as the number 644, so both mean `0o644`; YAML's own
//! octal `0o644` arrives as the number 420 and is refused when its digits
//! are not octal (write the mode as a string). Only permission bits
//! (at most `0o777`) are accepted.

use serde_yaml_ng::Value as Yaml;

use crate::index::describe;

/// The largest mode: permission bits only (no setuid, setgid or sticky).
const MAX_MODE: u32 = 0o777;

/// Reads a mode.
pub(crate) fn parse(value: &Yaml) -> Result<u32, String> {
    let text = match value {
        Yaml::String(s) => s.trim().to_owned(),
        Yaml::Number(n) => n.to_string(),
        other => {
            return Err(format!(
                "expected an octal mode such as \"0644\", found {}",
                describe(other)
            ));
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(&text);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.is_empty() && !digits.starts_with('+'))
        .ok_or_else(|| format!("{text:?} is not an octal mode such as \"0644\""))?;
    if mode > MAX_MODE {
        return Err(format!(
            "{text:?} is more than {MAX_MODE:o}: only permission bits are accepted"
        ));
    }
    Ok(mode)
}

/// The mode read from an optional value, or `default`.
pub(crate) fn parse_or(value: Option<&Yaml>, default: u32) -> Result<u32, String> {
    match value {
        None | Some(Yaml::Null) => Ok(default),
        Some(value) => parse(value),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_yaml_ng::Value as Yaml;

    fn yaml(text: &str) -> Yaml {
        serde_yaml_ng::from_str(text).expect("yaml")
    }

    #[test]
    fn reads_strings_and_numbers_as_octal() {
        assert_eq!(parse(&yaml("0600")), Ok(0o600));
        assert_eq!(parse(&yaml("\"0755\"")), Ok(0o755));
        assert_eq!(parse(&yaml("644")), Ok(0o644));
        assert_eq!(parse(&yaml("\"0o700\"")), Ok(0o700));
        assert!(parse(&yaml("0o600")).is_err(), "384 has an 8");
        assert!(parse(&yaml("\"0855\"")).is_err());
        assert!(parse(&yaml("\"04755\"")).is_err());
        assert!(parse(&yaml("\"\"")).is_err());
        assert!(parse(&yaml("\"+7\"")).is_err());
        assert!(parse(&yaml("true")).is_err());
    }
}
