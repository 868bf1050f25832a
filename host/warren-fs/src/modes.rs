//! The small vocabularies of the `fs` module: how a file is opened or
//! written, where a seek starts, and the volume's octal `mode`.
//!
//! Each parses the exact string of the Lua API and nothing else, so a bad
//! mode or whence is `INVALID` before anything touches the disk.

use warren_core::ProcError;

use crate::error::invalid;

/// How `vol:writefile` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `"w"`: create or truncate.
    Truncate,
    /// `"a"`: create or append.
    Append,
    /// `"wx"`: create; `ALREADY_EXISTS` if present.
    Exclusive,
}

impl WriteMode {
    /// The mode named `s` (`"w"`, `"a"`, `"wx"`); `INVALID` otherwise.
    pub fn parse(s: &str) -> Result<WriteMode, ProcError> {
        match s {
            "w" => Ok(WriteMode::Truncate),
            "a" => Ok(WriteMode::Append),
            "wx" => Ok(WriteMode::Exclusive),
            _ => Err(invalid(format!(
                "invalid write mode '{s}' (expected w, a or wx)"
            ))),
        }
    }

    /// The [`OpenMode`] that writes this way.
    pub fn open_mode(self) -> OpenMode {
        match self {
            WriteMode::Truncate => OpenMode::Write,
            WriteMode::Append => OpenMode::Append,
            WriteMode::Exclusive => OpenMode::Exclusive,
        }
    }
}

/// How `vol:open` opens a file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `"r"`: read an existing file.
    Read,
    /// `"w"`: write, creating or truncating.
    Write,
    /// `"a"`: write at the end, creating if missing.
    Append,
    /// `"wx"`: write a new file; `ALREADY_EXISTS` if present.
    Exclusive,
}

impl OpenMode {
    /// The mode named `s` (`"r"`, `"w"`, `"a"`, `"wx"`); `INVALID` otherwise.
    pub fn parse(s: &str) -> Result<OpenMode, ProcError> {
        match s {
            "r" => Ok(OpenMode::Read),
            "w" => Ok(OpenMode::Write),
            "a" => Ok(OpenMode::Append),
            "wx" => Ok(OpenMode::Exclusive),
            _ => Err(invalid(format!(
                "invalid open mode '{s}' (expected r, w, a or wx)"
            ))),
        }
    }

    /// Whether a file opened this way can be read.
    pub fn reads(self) -> bool {
        self == OpenMode::Read
    }

    /// Whether a file opened this way can be written.
    pub fn writes(self) -> bool {
        !self.reads()
    }
}

/// Where `file:seek` counts from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Whence {
    /// `"set"`: from the start.
    Set,
    /// `"cur"`: from the current position.
    Cur,
    /// `"end"`: from the end.
    End,
}

impl Whence {
    /// The whence named `s` (`"set"`, `"cur"`, `"end"`); `INVALID` otherwise.
    pub fn parse(s: &str) -> Result<Whence, ProcError> {
        match s {
            "set" => Ok(Whence::Set),
            "cur" => Ok(Whence::Cur),
            "end" => Ok(Whence::End),
            _ => Err(invalid(format!(
                "invalid whence '{s}' (expected set, cur or end)"
            ))),
        }
    }
}

/// The volume `mode` of an entry: an octal string of permission bits such
/// as `"0755"` or `"555"` (at most `0777`); `INVALID` otherwise.
pub fn parse_mode(s: &str) -> Result<u32, ProcError> {
    let bad = || {
        invalid(format!(
            "invalid mode '{s}' (expected octal such as \"0755\")"
        ))
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if mode > 0o777 {
        return Err(bad());
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!(parse_mode("0755").expect("ok"), 0o755);
        assert_eq!(parse_mode("555").expect("ok"), 0o555);
        assert!(parse_mode("1755").is_err());
        assert!(parse_mode("0855").is_err());
        assert!(parse_mode("").is_err());
        assert_eq!(Whence::parse("end").expect("ok"), Whence::End);
        assert!(OpenMode::parse("rw").is_err());
        assert_eq!(
            WriteMode::parse("wx").expect("ok").open_mode(),
            OpenMode::Exclusive
        );
    }
}
