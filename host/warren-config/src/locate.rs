//! Finding the key a serde error is about. Deserializing from a YAML value
//! gives messages such as ``invalid type: integer `5`, expected a string``
//! without a path; the offending value is found in the entry's YAML instead,
//! so the error can name its key (`lifecycle.auto_start`, `modules[1]`).

use serde_yaml_ng::Value as Yaml;

/// What a serde message says the offending value is.
enum Found<'a> {
    Integer(&'a str),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Sequence,
    Map,
    Null,
}

/// The key `message` is about, when the value it quotes occurs exactly
/// once in `yaml` (or the message names a missing field).
pub(crate) fn key_of(message: &str, yaml: &Yaml) -> Option<String> {
    if let Some(rest) = message.strip_prefix("missing field `") {
        return rest.split_once('`').map(|(key, _)| key.to_owned());
    }
    let found = parse(message)?;
    let mut paths = Vec::new();
    walk(yaml, "", &found, &mut paths);
    match paths.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    }
}

fn parse(message: &str) -> Option<Found<'_>> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let quoted = |prefix: &str| {
        rest.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('`'))
            .and_then(|r| r.split_once('`'))
            .map(|(v, _)| v)
    };
    if let Some(n) = quoted("integer ") {
        return Some(Found::Integer(n));
    }
    if let Some(f) = quoted("floating point ") {
        return f.parse().ok().map(Found::Float);
    }
    if let Some(b) = quoted("boolean ") {
        return b.parse().ok().map(Found::Bool);
    }
    if let Some(s) = rest.strip_prefix("string \"") {
        return s.split_once("\", expected").map(|(s, _)| Found::Str(s));
    }
    [
        ("sequence", Found::Sequence),
        ("map", Found::Map),
        ("unit value", Found::Null),
    ]
    .into_iter()
    .find(|(prefix, _)| rest.starts_with(prefix))
    .map(|(_, found)| found)
}

fn matches(value: &Yaml, found: &Found<'_>) -> bool {
    match (value, found) {
        (Yaml::Number(n), Found::Integer(text)) => n.to_string() == *text,
        (Yaml::Number(n), Found::Float(f)) => n.as_f64() == Some(*f),
        (Yaml::String(s), Found::Str(text)) => s == text,
        (Yaml::Bool(b), Found::Bool(want)) => b == want,
        (Yaml::Sequence(_), Found::Sequence)
        | (Yaml::Mapping(_), Found::Map)
        | (Yaml::Null, Found::Null) => true,
        _ => false,
    }
}

fn walk(value: &Yaml, path: &str, found: &Found<'_>, out: &mut Vec<String>) {
    if !path.is_empty() && matches(value, found) {
        out.push(path.to_owned());
    }
    match value {
        Yaml::Mapping(map) => {
            for (key, item) in map {
                let key = key
                    .as_str()
                    .map_or_else(|| format!("{key:?}"), str::to_owned);
                let sub = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                walk(item, &sub, found, out);
            }
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), found, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::key_of;

    fn yaml(text: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(text).expect("yaml")
    }

    #[test]
    fn finds_the_key_of_the_quoted_value() {
        let y = yaml(
            "name: a\nlifecycle: { auto_start: yes_please, restart: { max_attempts: -1 } }\nmodules: [json, 7]",
        );
        assert_eq!(
            key_of(
                "invalid type: string \"yes_please\", expected a boolean",
                &y
            )
            .as_deref(),
            Some("lifecycle.auto_start")
        );
        assert_eq!(
            key_of("invalid value: integer `-1`, expected u32", &y).as_deref(),
            Some("lifecycle.restart.max_attempts")
        );
        assert_eq!(
            key_of("invalid type: integer `7`, expected a string", &y).as_deref(),
            Some("modules[1]")
        );
        assert_eq!(
            key_of("missing field `process`", &y).as_deref(),
            Some("process")
        );
    }

    #[test]
    fn gives_up_when_the_value_is_ambiguous_or_absent() {
        let y = yaml("a: 1\nb: 1");
        assert_eq!(
            key_of("invalid type: integer `1`, expected a string", &y),
            None
        );
        assert_eq!(
            key_of("invalid type: integer `2`, expected a string", &y),
            None
        );
        assert_eq!(key_of("something else", &y), None);
    }
}
