//! Components through the `warren` binary: single files, `process.wasm`
//! entries, and `check` refusing a component built for another interface.

mod common;

use common::{app, stderr, warren};

#[test]
fn a_component_file_runs_as_the_main_process() {
    let crasher = warren_tests::component("crasher").display().to_string();
    let out = warren(&["run", &crasher, "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &crasher, "log"]);
    let logged = stderr(&out);
    let line = logged
        .lines()
        .find(|l| l.contains("logged by a component"))
        .unwrap_or_default();
    assert!(line.contains("WARN") && line.contains("pid=<"), "{logged}");
    let out = warren(&["run", &crasher, "error"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("caused by: deliberate error from a component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn process_wasm_entries_run_and_are_checked() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: crash
    kind: process.wasm
    source: file://crasher.wasm
    limits: { memory: 16MiB }
"#;
    let dir = app("wasmapp", &[("_index.yaml", index)]);
    std::fs::copy(warren_tests::component("crasher"), dir.join("crasher.wasm")).expect("copy");
    std::fs::copy(
        warren_tests::component("wrong_version"),
        dir.join("wrong.wasm"),
    )
    .expect("copy");
    let d = dir.display().to_string();
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &d, "-x", "app:crash", "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bad = format!(
        "{index}  - name: wrong\n    kind: process.wasm\n    source: file://wrong.wasm\n    method: main\n"
    );
    std::fs::write(dir.join("_index.yaml"), &bad).expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:wrong': key 'method': 'main'"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("_index.yaml"),
        bad.replace("    method: main\n", ""),
    )
    .expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:wrong':")
            && stderr(&out).contains("@0.2.0, but this host implements warren:process@0.1.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn component_output_goes_to_the_log_line_by_line_tagged_with_its_pid() {
    let probe = warren_tests::component("wasi_probe").display().to_string();
    let out = warren(&["run", &probe]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    let line = |text: &str| log.lines().find(|l| l.contains(text)).unwrap_or_default();
    assert!(line("hello from stdout").contains("INFO"), "{log}");
    assert!(line("hello from stdout").contains("pid=<"), "{log}");
    assert!(line("hello from stderr").contains("WARN"), "{log}");
    assert!(line("a partial line").contains("pid=<"), "{log}");
}

#[test]
fn check_refuses_a_component_importing_what_its_entry_does_not_grant() {
    let index = |wasi: &str| {
        format!(
            "version: \"1.0\"\nnamespace: app\nentries:\n  - name: net\n    kind: process.wasm\n    source: file://net.wasm\n{wasi}"
        )
    };
    let dir = app("netapp", &[("_index.yaml", &index(""))]);
    std::fs::copy(warren_tests::component("net_probe"), dir.join("net.wasm")).expect("copy");
    let d = dir.display().to_string();
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:net'")
            && stderr(&out).contains("imports wasi:sockets/")
            && stderr(&out).contains("which is not granted"),
        "{}",
        stderr(&out)
    );
    let granted = index("    wasi: { network: true }\n");
    std::fs::write(dir.join("_index.yaml"), granted).expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &d, "-x", "app:net"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_mixed_lua_and_webassembly_example_runs_and_checks_every_digest() {
    // Builds components/, which the example's entry points into.
    warren_tests::component("hasher");
    let out = warren(&["check", "examples/hashing"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", "examples/hashing", "-x", "hashing:main"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("40 blocks hashed by 4 WebAssembly workers, every digest matches Lua's"),
        "{}",
        stderr(&out)
    );
}
