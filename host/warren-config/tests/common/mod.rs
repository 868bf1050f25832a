//! Helpers shared by the configuration tests: application folders written
//! to a fresh directory and loaded, and what a failed load says.
//!
//! Each test binary compiles this module and uses part of it.
#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::path::{Path, PathBuf};

use warren_config::{App, ConfigError};

/// Writes `files` into a fresh folder `group/name` under the test target's
/// temporary directory and loads it with `modules`.
pub fn write_and_load(
    group: &str,
    name: &str,
    files: &[(&str, &str)],
    modules: &[&str],
) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    let result = App::load(&dir, modules);
    (dir, result)
}

/// An `_index.yaml` of `namespace` with `entries`.
pub fn index(namespace: &str, entries: &str) -> String {
    format!("version: \"1.0\"\nnamespace: {namespace}\nentries:\n{entries}")
}

/// The single problem of a failed load of `dir`, as printed: it starts
/// with the path of `dir`'s `_index.yaml`.
pub fn only_problem(dir: &Path, result: Result<App, Vec<ConfigError>>) -> String {
    let problems = result.expect_err("the load fails");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    let file = dir.join("_index.yaml").display().to_string();
    assert!(text.starts_with(&format!("{file}: ")), "{text}");
    text
}

/// Asserts `text` contains every one of `needles`.
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}
