//! Parsing the text of a YAML file (`_index.yaml`, `.wippy.yaml`) within
//! bounds, before it becomes a typed value: its nesting is checked by a
//! linear scan ([`crate::nesting`]), then a first pass counts its values
//! with every alias expanded, and quotes an integer no 64-bit type holds
//! with the key it sits under. Only then is the file parsed for use.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};

use crate::ConfigError;
use crate::nesting::{self, MAX_YAML_DEPTH};

/// Values (scalars, lists and maps, keys included) one YAML file may hold
/// once its aliases are expanded. Each `*alias` repeats its anchor's
/// values: 3,000 aliases of one 3,000-item list (a 15 KB file) made 9
/// million values, 1.35 GB and 5 s of loading, and a 50 KB file would take
/// the machine; serde_yaml_ng's own limit (100 alias expansions per event
/// of the file) lets both through. Configuration holds thousands.
pub const MAX_YAML_VALUES: usize = 1 << 20;

/// The parser's message when aliases expand more often than it allows.
const REPETITION: &str = "repetition limit exceeded";

/// Parses `text`, the contents of `file`, into a `T`.
pub(crate) fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    if let Err(deep) = nesting::check(text) {
        let message = format!(
            "collections nested more than {MAX_YAML_DEPTH} deep at line {} column {} \
             (lists and maps, block and flow, count together)",
            deep.line, deep.column
        );
        return Err(file_error(file, message));
    }
    count(file, text)?;
    serde_yaml_ng::from_str(text).map_err(|err| file_error(file, err.to_string()))
}

fn file_error(file: &Path, message: String) -> ConfigError {
    ConfigError::File {
        file: file.to_path_buf(),
        message,
    }
}

/// One step of the way to a value.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What the counting pass found wrong, and where.
#[derive(Debug)]
enum Problem {
    /// An integer outside `i64` and `u64` (its digits).
    Integer(String),
    /// More than [`MAX_YAML_VALUES`] values.
    TooMany,
}

/// The counting pass's state, shared by the visitors of every level.
#[derive(Default)]
struct Tally {
    values: usize,
    /// The keys and indices leading to the value being read.
    path: Vec<Step>,
    /// The first problem, where it was found.
    problem: Option<(Problem, Vec<Step>)>,
    /// Where an error of the parser itself passed first.
    failed_at: Option<Vec<Step>>,
    /// The file's `namespace` and its entries' `name`s, to name an entry.
    namespace: Option<String>,
    names: Vec<(usize, String)>,
}

/// Counts the values of `text` (aliases expanded) and refuses an integer
/// no 64-bit type holds, naming the key of each. Other errors are left to
/// the parse proper, which reports them with their line as before.
fn count(file: &Path, text: &str) -> Result<(), ConfigError> {
    let mut tally = Tally::default();
    let seed = Count {
        tally: &mut tally,
        keep: false,
    };
    let Err(err) = seed.deserialize(serde_yaml_ng::Deserializer::from_str(text)) else {
        return Ok(());
    };
    if let Some((problem, path)) = tally.problem.take() {
        let line = err
            .location()
            .map(|at| format!(" at line {}", at.line()))
            .unwrap_or_default();
        return Err(tally.error(file, &path, problem, &line));
    }
    let text = err.to_string();
    match tally.failed_at.take() {
        Some(path) if text.starts_with(REPETITION) => {
            let message = format!(
                "aliases (*name) repeat their anchors' values more often than the YAML \
                 parser allows ({text}): write the values out, or use fewer aliases"
            );
            Err(tally.place_error(file, &path, message))
        }
        _ => Ok(()),
    }
}

impl Tally {
    /// Counts one more value.
    fn add(&mut self) -> Result<(), String> {
        self.values += 1;
        if self.values > MAX_YAML_VALUES {
            return Err(self.found(Problem::TooMany));
        }
        Ok(())
    }

    /// Records `problem` where the pass is; the message stops the pass.
    fn found(&mut self, problem: Problem) -> String {
        let message = match &problem {
            Problem::Integer(digits) => format!("integer {digits} is out of range"),
            Problem::TooMany => format!("more than {MAX_YAML_VALUES} values"),
        };
        self.problem = Some((problem, self.path.clone()));
        message
    }

    /// Records where an error from below first passed (`step`: the item
    /// or key it came from).
    fn failed(&mut self, step: Step) {
        if self.failed_at.is_none() {
            let mut path = self.path.clone();
            path.push(step);
            self.failed_at = Some(path);
        }
    }

    /// Notes the strings that name entries.
    fn note(&mut self, text: String) {
        match self.path.as_slice() {
            [Step::Key(key)] if key == "namespace" => self.namespace = Some(text),
            [Step::Key(entries), Step::Index(i), Step::Key(key)]
                if entries == "entries" && key == "name" =>
            {
                self.names.push((*i, text));
            }
            _ => {}
        }
    }

    fn error(&self, file: &Path, path: &[Step], problem: Problem, line: &str) -> ConfigError {
        let message = match problem {
            Problem::Integer(digits) => format!(
                "integer {digits}{line} is out of range: whole numbers must lie between \
                 {} and {}",
                i64::MIN,
                u64::MAX
            ),
            Problem::TooMany => format!(
                "the file holds more than {MAX_YAML_VALUES} values (MAX_YAML_VALUES){line}, \
                 counting each alias (*name) as the values it repeats"
            ),
        };
        self.place_error(file, path, message)
    }

    /// An error at `path`: under `entries[i]`, of that entry (by its id
    /// when its name has been read, else by its position) and key.
    fn place_error(&self, file: &Path, path: &[Step], message: String) -> ConfigError {
        let file = file.to_path_buf();
        let (i, rest) = match path {
            [Step::Key(entries), Step::Index(i), rest @ ..] if entries == "entries" => (i, rest),
            [] => return ConfigError::File { file, message },
            _ => {
                let message = format!("key '{}': {message}", dotted(path));
                return ConfigError::File { file, message };
            }
        };
        let name = self.names.iter().find(|(at, _)| at == i).map(|(_, n)| n);
        let entry = match (&self.namespace, name) {
            (Some(namespace), Some(name)) => format!("{namespace}:{name}"),
            _ => format!("#{}", i + 1),
        };
        if rest.is_empty() {
            return ConfigError::Entry {
                file,
                entry,
                message,
            };
        }
        ConfigError::Key {
            file,
            entry,
            key: dotted(rest),
            message,
        }
    }
}

/// A path as keys are named in messages: `limits.memory`, `modules[1]`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The counting pass over one value: it holds nothing but the text of a
/// scalar it is asked to `keep` (a map key, or a string that may name an
/// entry).
struct Count<'t> {
    tally: &'t mut Tally,
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl Count<'_> {
    /// A scalar: counted, and its text returned when kept.
    fn scalar<E: de::Error>(self, text: impl fmt::Display) -> Result<Option<String>, E> {
        self.tally.add().map_err(E::custom)?;
        Ok(self.keep.then(|| text.to_string()))
    }

    /// An integer no 64-bit type holds: the pass stops at it.
    fn out_of_range<E: de::Error>(self, digits: String) -> Result<Option<String>, E> {
        Err(E::custom(self.tally.found(Problem::Integer(digits))))
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.scalar(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.scalar(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.scalar(v)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        self.out_of_range(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        self.out_of_range(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.scalar(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.tally.add().map_err(E::custom)?;
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.tally.add().map_err(de::Error::custom)?;
        for index in 0.. {
            self.tally.path.push(Step::Index(index));
            let item = seq.next_element_seed(Count {
                tally: &mut *self.tally,
                keep: false,
            });
            self.tally.path.pop();
            match item {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) => {
                    self.tally.failed(Step::Index(index));
                    return Err(err);
                }
            }
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.tally.add().map_err(de::Error::custom)?;
        loop {
            let key = map.next_key_seed(Count {
                tally: &mut *self.tally,
                keep: true,
            });
            let key = match key {
                Ok(Some(key)) => key.unwrap_or_else(|| "?".to_owned()),
                Ok(None) => break,
                Err(err) => {
                    self.tally.failed(Step::Key("?".to_owned()));
                    return Err(err);
                }
            };
            let keep = matches!(key.as_str(), "namespace" | "name");
            self.tally.path.push(Step::Key(key));
            let value = map.next_value_seed(Count {
                tally: &mut *self.tally,
                keep,
            });
            match value {
                Ok(Some(text)) => self.tally.note(text),
                Ok(None) => {}
                Err(err) => {
                    if let Some(step) = self.tally.path.pop() {
                        self.tally.failed(step);
                    }
                    return Err(err);
                }
            }
            self.tally.path.pop();
        }
        Ok(None)
    }

    /// A tagged value (`!tag value`): its contents count.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (_tag, contents): (String, _) = data.variant()?;
        contents.newtype_variant_seed(Count {
            tally: self.tally,
            keep: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Step, dotted, parse};

    fn problem(text: &str) -> String {
        let parsed: Result<serde_yaml_ng::Value, _> = parse(Path::new("x.yaml"), text);
        parsed.expect_err("refused").to_string()
    }

    #[test]
    fn paths_read_as_keys() {
        let path = [
            Step::Key("limits".into()),
            Step::Key("memory".into()),
            Step::Index(2),
        ];
        assert_eq!(dotted(&path), "limits.memory[2]");
    }

    #[test]
    fn ordinary_files_parse_as_before() {
        let text = "a: &x [1, 2, {b: c}]\nb: *x\nc: !tag 3\nd: -9223372036854775808\n";
        let value: serde_yaml_ng::Value = parse(Path::new("x.yaml"), text).expect("parses");
        assert_eq!(value["b"], value["a"]);
        let broken = problem("a: [1, 2\n");
        assert!(broken.starts_with("x.yaml: "), "{broken}");
        assert!(broken.contains("line"), "{broken}");
    }

    #[test]
    fn an_integer_beyond_64_bits_names_its_entry_by_position_until_its_name_is_read() {
        let late = "namespace: app\nentries:\n  - name: a\n  \
                    - { kind: x, n: 18446744073709551616, name: b }\n";
        assert_eq!(
            problem(late),
            "x.yaml: entry '#2': key 'n': integer 18446744073709551616 at line 4 is out of \
             range: whole numbers must lie between -9223372036854775808 and \
             18446744073709551615"
        );
    }

    #[test]
    fn a_key_outside_the_entries_is_named_by_its_path() {
        let text = problem("lua: { type_system: { enabled: -99999999999999999999 } }\n");
        assert!(
            text.starts_with(
                "x.yaml: key 'lua.type_system.enabled': integer -99999999999999999999 at line 1"
            ),
            "{text}"
        );
    }
}
