//! Values taken from the application's variables at load (modules.md §4
//! "env", "Entries"): `${env:NAME}` and `${env:NAME|default}` placeholders
//! in string fields (`$${` is a literal `${`), and `<field>_env: NAME` on
//! database fields. An empty value counts as unset, so a default applies.
//!
//! NAME is a declared `env.variable`'s public name or entry id, read
//! through its storage without grants ([`lookup`]). **Departure from the
//! spec**, kept for applications written before `env.variable` existed:
//! a NAME that no variable declares is read from Warren's own process
//! environment (`std::env::var`). Messages from here never hold a
//! resolved value.

use warren_env::Env;

/// Looks a variable up: `Ok(None)` when it is unset or empty.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>, String>;

/// A text after expansion.
#[derive(Debug, PartialEq)]
pub(crate) struct Expanded {
    /// The text with every placeholder replaced.
    pub(crate) text: String,
    /// Whether a placeholder was replaced (the text then holds a value
    /// that must not be printed).
    pub(crate) substituted: bool,
}

/// The value of variable `name`: through the declared variable of that
/// public name or id when `env` declares one, else (the departure above)
/// from Warren's process environment.
pub(crate) fn lookup(env: Option<&Env>, name: &str) -> Result<Option<String>, String> {
    check_name(name)?;
    match env {
        Some(env) if env.declares(name) => Ok(env.resolve(name)),
        _ => from_process(name),
    }
}

/// Reads `name` from Warren's process environment; an entry id (which no
/// declared variable has) is never an OS name.
fn from_process(name: &str) -> Result<Option<String>, String> {
    if !warren_env::is_public_name(name) {
        return Ok(None);
    }
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable '{name}' is not valid UTF-8"))
        }
    }
}

/// A variable name is a public name (`[A-Za-z0-9_]+`) or an entry id.
fn check_name(name: &str) -> Result<(), String> {
    if warren_env::is_public_name(name) || warren_env::is_entry_id(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a variable name (letters, digits and '_', or an entry id)"
        ))
    }
}

/// Replaces the placeholders of `text`. The error never quotes `text`
/// (it may be a secret), only a variable name.
pub(crate) fn expand(text: &str, lookup: Lookup<'_>) -> Result<Expanded, String> {
    let mut out = String::with_capacity(text.len());
    let mut substituted = false;
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let (value, after) = placeholder(after, lookup)?;
            out.push_str(&value);
            substituted = true;
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Expanded {
        text: out,
        substituted,
    })
}

/// The value of the placeholder whose body starts `text` (just after its
/// `${`), and the text after its `}`.
fn placeholder<'t>(text: &'t str, lookup: Lookup<'_>) -> Result<(String, &'t str), String> {
    let Some(end) = text.find('}') else {
        return Err("a '${' has no closing '}' (write $${ for a literal ${)".into());
    };
    let Some(body) = text[..end].strip_prefix("env:") else {
        return Err(
            "a '${' does not start a ${env:NAME} or ${env:NAME|default} placeholder \
             (write $${ for a literal ${)"
                .into(),
        );
    };
    let (name, default) = match body.split_once('|') {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    check_name(name)?;
    let value = match (lookup(name)?, default) {
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) => {
            return Err(format!(
                "variable '{name}' of placeholder ${{env:{name}}} is not set \
                 and the placeholder has no default (${{env:{name}|default}})"
            ));
        }
    };
    Ok((value, &text[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::{Expanded, expand};

    fn lookup(name: &str) -> Result<Option<String>, String> {
        Ok((name == "SET").then(|| "value".to_owned()))
    }

    fn text(input: &str) -> String {
        expand(input, &lookup).expect("expands").text
    }

    #[test]
    fn replaces_placeholders() {
        assert_eq!(text("a${env:SET}b"), "avalueb");
        assert_eq!(text("${env:UNSET|dflt}"), "dflt");
        assert_eq!(text("${env:UNSET|}"), "");
        assert_eq!(text("${env:SET|dflt}"), "value");
        assert_eq!(
            expand("plain $x", &lookup),
            Ok(Expanded {
                text: "plain $x".into(),
                substituted: false
            })
        );
        assert_eq!(text("$${env:SET}"), "${env:SET}");
        assert_eq!(text("$$${env:SET}"), "$${env:SET}");
        assert!(expand("${env:SET}", &lookup).expect("expands").substituted);
    }

    #[test]
    fn refuses_what_it_cannot_resolve_without_quoting_the_text() {
        let err = expand("secret${env:UNSET}", &lookup).expect_err("unset");
        assert!(err.contains("'UNSET'"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = expand("secret${nope}", &lookup).expect_err("not env");
        assert!(!err.contains("secret") && !err.contains("nope"), "{err}");
        let err = expand("secret${env:SET", &lookup).expect_err("unclosed");
        assert!(err.contains("closing"), "{err}");
        let err = expand("${env:BAD-NAME}", &lookup).expect_err("bad name");
        assert!(err.contains("not a variable name"), "{err}");
    }
}
