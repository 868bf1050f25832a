//! YAML whose parsing is the attack: collections nested 100,000 deep,
//! anchors whose aliases repeat millions of values, an integer no 64-bit
//! type holds. Each is refused fast, naming the file, and the entry and
//! key (or the line) where it sits; configuration within the bounds loads.

mod common;

use std::path::PathBuf;

use common::{assert_mentions, index, write_and_load};
use warren_config::{App, ConfigError, MAX_YAML_DEPTH, MAX_YAML_VALUES};
use warren_core::Value;

const GROUP: &str = "warren-config-yaml";

/// Writes an app of one `_index.yaml` (namespace `app`) with `entries`.
fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    write_and_load(GROUP, name, &[("_index.yaml", &index("app", entries))], &[])
}

/// The single problem of a failed load, as printed; it names the file.
fn problem(name: &str, entries: &str) -> String {
    let (dir, result) = load(name, entries);
    common::only_problem(&dir, result)
}

/// A registry entry `r` whose `data` is `data` (on the entry's 4th line,
/// the file's 7th).
fn registry(data: &str) -> String {
    format!("  - name: r\n    kind: registry.entry\n    meta: {{ n: 1 }}\n    data: {data}\n")
}

#[test]
fn flow_lists_a_hundred_thousand_deep_are_refused_at_the_bound_with_their_line() {
    // The probe's file: 200 KB that kept `warren check` busy for minutes.
    let n = 100_000;
    let entries = format!(
        "  - name: st\n    kind: env.storage.static\n    values: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let text = problem("deep-flow", &entries);
    // The file's map, the entry list and the entry are 3 levels: the first
    // `[` past the bound is the (MAX_YAML_DEPTH - 2)th.
    let column = "    values: ".len() + MAX_YAML_DEPTH - 2;
    assert_mentions(
        &text,
        &[&format!(
            "collections nested more than {MAX_YAML_DEPTH} deep at line 6 column {column}"
        )],
    );
}

#[test]
fn flow_maps_and_block_lists_past_the_bound_are_refused_too() {
    let maps = registry(&format!(
        "{}x{}",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    ));
    let text = problem("deep-maps", &maps);
    assert_mentions(&text, &["nested more than 64 deep at line 7"]);
    let lists = registry(&format!("\n      {}x", "- ".repeat(MAX_YAML_DEPTH)));
    let text = problem("deep-block", &lists);
    assert_mentions(&text, &["nested more than 64 deep at line 8"]);
}

#[test]
fn nesting_within_the_bound_loads_whole() {
    // The file's map, the entry list and the entry take 3 levels.
    let depth = MAX_YAML_DEPTH - 3;
    let data = format!(
        "{}\"[{{ not a list\"{}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (_, result) = load("deep-enough", &registry(&data));
    let app = result.expect("loads");
    let mut value = &app.entries["app:r"].data;
    for _ in 0..depth {
        match value {
            Value::Array(items) => value = &items[0],
            other => panic!("expected a list, found {other:?}"),
        }
    }
    assert_eq!(*value, Value::str("[{ not a list"));
}

#[test]
fn the_project_file_is_bounded_as_well() {
    let index = index("app", &registry("1"));
    let deep = format!("lua: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let (dir, result) = write_and_load(
        GROUP,
        "deep-wippy",
        &[("_index.yaml", &index), (".wippy.yaml", &deep)],
        &[],
    );
    let problems = result.expect_err("refused");
    let text = problems[0].to_string();
    let file = dir.join(".wippy.yaml").display().to_string();
    assert!(text.starts_with(&format!("{file}: ")), "{text}");
    assert_mentions(&text, &["nested more than 64 deep at line 1"]);
}

#[test]
fn aliases_repeating_more_values_than_the_bound_are_refused() {
    // 1,100 aliases of a 1,000-item list: 1.1 million values from 8 KB.
    let list = vec!["1"; 1000].join(",");
    let aliases = vec!["*a"; 1100].join(",");
    let data = format!("{{ a: &a [{list}], b: [{aliases}] }}");
    let text = problem("alias-values", &registry(&data));
    assert_mentions(
        &text,
        &[
            "entry 'app:r': key 'data.b[",
            &format!("more than {MAX_YAML_VALUES} values (MAX_YAML_VALUES) at line 7"),
            "counting each alias",
        ],
    );
}

#[test]
fn an_alias_bomb_names_the_entry_and_key_it_went_off_under() {
    let mut values = String::from("\n      a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, previous) in ["b", "c", "d", "e", "f", "g"]
        .into_iter()
        .zip(["a", "b", "c", "d", "e", "f"])
    {
        let items = vec![format!("*{previous}"); 9].join(", ");
        values.push_str(&format!("      {name}: &{name} [{items}]\n"));
    }
    let entries = format!("  - name: st\n    kind: env.storage.static\n    values:{values}");
    let text = problem("alias-bomb", &entries);
    assert_mentions(
        &text,
        &[
            "entry 'app:st': key 'values.",
            "repetition limit exceeded",
            "use fewer aliases",
        ],
    );
}

#[test]
fn an_integer_beyond_64_bits_names_the_entry_key_and_line() {
    let entries = "  - name: h\n    kind: process.host\n    limits:\n      \
                   max_processes: 99999999999999999999999999\n";
    let text = problem("huge-integer", entries);
    assert_mentions(
        &text,
        &[
            "entry 'app:h': key 'limits.max_processes': integer \
             99999999999999999999999999 at line 7 is out of range",
            "18446744073709551615",
        ],
    );
    let entries =
        "  - { name: m, kind: process.host, limits: { mailbox_limit: -99999999999999999999 } }\n";
    let text = problem("huge-negative", entries);
    assert_mentions(
        &text,
        &["entry 'app:m': key 'limits.mailbox_limit': integer -99999999999999999999 at line 4"],
    );
}
