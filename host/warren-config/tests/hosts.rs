//! `process.host` entries: workers bounded per host and over the
//! application (each is a thread with its own Lua VM), and the limits
//! whose 0 would make the host unusable refused at load, naming entry and
//! key.

mod common;

use std::path::PathBuf;

use common::{assert_mentions, index, write_and_load};
use warren_config::{App, ConfigError, MAX_APP_WORKERS, MAX_HOST_WORKERS};

/// Writes an app of one `_index.yaml` (namespace `app`) with `entries`.
fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let index = index("app", entries);
    write_and_load("warren-config-hosts", name, &[("_index.yaml", &index)], &[])
}

/// The single problem of a failed load, as printed; it names the file.
fn problem(name: &str, entries: &str) -> String {
    let (dir, result) = load(name, entries);
    common::only_problem(&dir, result)
}

fn host(name: &str, workers: usize) -> String {
    format!("  - {{ name: {name}, kind: process.host, host: {{ workers: {workers} }} }}\n")
}

#[test]
fn a_host_may_have_up_to_the_bound_of_workers() {
    let (_, result) = load("workers-at-bound", &host("h", MAX_HOST_WORKERS));
    let app = result.expect("loads");
    let (_, h) = app.hosts().next().expect("a host");
    assert_eq!(h.workers, Some(MAX_HOST_WORKERS));
    for workers in [MAX_HOST_WORKERS + 1, 100_000] {
        let text = problem("workers-past-bound", &host("h", workers));
        assert_mentions(
            &text,
            &[&format!(
                "entry 'app:h': key 'host.workers': {workers} is more than \
                 {MAX_HOST_WORKERS} (MAX_HOST_WORKERS)"
            )],
        );
    }
    let text = problem("workers-zero", &host("h", 0));
    assert_mentions(&text, &["key 'host.workers': must be at least 1"]);
}

#[test]
fn the_hosts_of_an_application_share_a_bound_of_workers() {
    // Three hosts within their own bound, over the application's.
    let per_host = MAX_APP_WORKERS / 2;
    let entries = [host("a", per_host), host("b", per_host), host("c", 1)].concat();
    let total = 2 * per_host + 1;
    let text = problem("app-workers", &entries);
    assert_mentions(
        &text,
        &[
            "key 'host.workers'",
            &format!("{per_host} here, and {total} over the application's 3 hosts"),
            &format!("more than {MAX_APP_WORKERS} (MAX_APP_WORKERS)"),
        ],
    );
    // A host without `workers` counts one per core, a terminal host one.
    let terminal = "  - { name: t, kind: terminal.host }\n";
    let entries = [
        host("a", per_host),
        host("b", per_host),
        terminal.to_owned(),
    ]
    .concat();
    assert_mentions(
        &problem("app-workers-terminal", &entries),
        &["over the application's 3 hosts"],
    );
    let unset = "  - { name: d, kind: process.host }\n";
    let entries = [host("a", per_host), host("b", per_host), unset.to_owned()].concat();
    assert_mentions(
        &problem("app-workers-unset", &entries),
        &["key 'host.workers'"],
    );
    let entries = [
        host("a", per_host),
        host("b", per_host - 1),
        terminal.to_owned(),
    ]
    .concat();
    let (_, result) = load("app-workers-at-bound", &entries);
    assert!(result.is_ok(), "{:?}", result.err());
}

#[test]
fn limits_whose_zero_leaves_nothing_to_run_refuse_it() {
    let cases = [
        (
            "memory_per_process",
            "0",
            "0 would end every process at its first allocation",
        ),
        (
            "memory_total",
            "0MiB",
            "0 would end every process of the host",
        ),
        (
            "max_message_bytes",
            "\"0 KiB\"",
            "0 would fail every send and spawn",
        ),
    ];
    for (key, value, message) in cases {
        let entries =
            format!("  - {{ name: h, kind: process.host, limits: {{ {key}: {value} }} }}\n");
        let text = problem(&format!("zero-{key}"), &entries);
        assert_mentions(
            &text,
            &[
                &format!("entry 'app:h': key 'limits.{key}': {message}"),
                "at least 1 byte",
            ],
        );
    }
    let entries = "  - name: h\n    kind: process.host\n    limits: { memory_per_process: 1, \
                   memory_total: 1KiB, max_message_bytes: 1 }\n";
    let (_, result) = load("one-byte-limits", entries);
    let app = result.expect("loads");
    let (_, h) = app.hosts().next().expect("a host");
    assert_eq!(h.limits.memory_per_process, Some(1));
    assert_eq!(h.limits.memory_total, Some(1024));
    assert_eq!(h.limits.max_message_bytes, Some(1));
}
