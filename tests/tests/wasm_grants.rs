//! What a component may touch besides the process interface: only the WASI
//! directories, variables and network its entry grants, within its memory
//! limit; and the on-disk cache of compiled components.

use std::path::{Path, PathBuf};

use warren_tests::*;
use warren_wasm::{DirGrant, EngineConfig, Grants, WasmEngine};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::create_dir_all(dir.join("out")).expect("mkdir");
    std::fs::write(dir.join("data/in.txt"), "hello\n").expect("write");
    dir
}

fn probe(grants: Grants) -> Vec<String> {
    let v = App::new()
        .component_granted("t:probe", "wasi_probe", grants)
        .run("t:probe", vec![])
        .expect("probe ran");
    strings(v)
}

#[test]
fn a_component_sees_exactly_the_directories_and_variables_granted() {
    let dir = scratch("grants-some");
    let grants = Grants {
        dirs: vec![
            DirGrant {
                host: dir.join("data"),
                guest: "/data".into(),
                writable: false,
            },
            DirGrant {
                host: dir.join("out"),
                guest: "/out".into(),
                writable: true,
            },
        ],
        env: vec![("MODE".into(), "fast".into())],
        ..Grants::default()
    };
    let seen = probe(grants);
    assert_eq!(seen[0], "env:MODE=fast");
    assert_eq!(seen[1], "read:hello");
    assert_ne!(seen[2], "write-ro:ok", "a read-only grant was writable");
    assert_eq!(seen[3], "write-rw:ok");
    assert_ne!(seen[4], "escape:ok", "a path escaped its preopen");
    assert!(!dir.join("data/new.txt").exists());
    let written = std::fs::read_to_string(dir.join("out/new.txt")).expect("written");
    assert_eq!(written, "written by a component");
}

#[test]
fn a_component_granted_nothing_sees_no_files_and_no_environment() {
    let seen = probe(Grants::default());
    assert_eq!(seen[0], "env:");
    assert_eq!(seen[1], "read:-");
    assert_ne!(seen[2], "write-ro:ok");
    assert_ne!(seen[3], "write-rw:ok");
}

#[test]
fn a_component_granted_only_variables_sees_them_on_its_first_wasi_call() {
    // No directory: the context is built on the guest's first WASI call
    // (`WasiSlot`), with the same grants.
    let grants = Grants {
        env: vec![("MODE".into(), "slow".into())],
        ..Grants::default()
    };
    let seen = probe(grants);
    assert_eq!(seen[0], "env:MODE=slow");
    assert_eq!(seen[1], "read:-");
}

#[test]
fn a_directory_that_cannot_be_opened_ends_the_component_before_it_runs() {
    let dir = scratch("grants-missing");
    let missing = dir.join("no-such-dir");
    let grants = Grants {
        dirs: vec![DirGrant {
            host: missing.clone(),
            guest: "/data".into(),
            writable: false,
        }],
        ..Grants::default()
    };
    let err = App::new()
        .component_granted("t:probe", "wasi_probe", grants)
        .run("t:probe", vec![])
        .expect_err("cannot start");
    assert_eq!(err.kind, warren_core::ErrorKind::Unavailable, "{err:?}");
    assert!(
        err.message.contains("cannot open") && err.message.contains("no-such-dir"),
        "{}",
        err.message
    );
}

#[test]
fn sockets_are_refused_at_load_unless_the_network_is_granted() {
    let err = engine()
        .load(&component("net_probe"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("imports wasi:sockets/") && err.contains("network: true"),
        "{err}"
    );
    let granted = Grants {
        network: true,
        ..Grants::default()
    };
    let v = App::new()
        .component_granted("t:net", "net_probe", granted)
        .run("t:net", vec![])
        .expect("ran");
    assert_eq!(v, s("bound:true"));
}

/// Name lookups of a network-granted component (Warren's own
/// `wasi:sockets/ip-name-lookup`, on the DNS lane): a name resolves, an IP
/// literal answers as itself, and a malformed name fails.
#[test]
fn a_network_granted_component_resolves_names() {
    let granted = Grants {
        network: true,
        ..Grants::default()
    };
    let lookup = |name: &str| {
        App::new()
            .component_granted("t:net", "net_probe", granted.clone())
            .run("t:net", vec![s("lookup"), s(name)])
            .expect("ran")
    };
    let found = lookup("localhost");
    let warren_core::Value::Str(found) = found else {
        panic!("{found:?}")
    };
    let found = String::from_utf8_lossy(&found);
    assert!(
        found.starts_with("found:") && (found.contains("127.0.0.1") || found.contains("::1")),
        "{found}"
    );
    assert_eq!(lookup("10.1.2.3"), s("found:10.1.2.3"));
    let bad = lookup("bad name with spaces");
    assert!(
        matches!(&bad, warren_core::Value::Str(t) if t.starts_with(b"failed:")),
        "{bad:?}"
    );
}

#[test]
fn a_component_past_its_memory_limit_ends_abnormally_and_its_monitor_sees_it() {
    let limited = Grants {
        memory: Some(8 << 20),
        ..Grants::default()
    };
    let v = App::new()
        .component_granted("t:grow", "crasher", limited)
        .entry(
            "t:main",
            r#"return function()
            local events = process.events()
            local pid = process.spawn_monitored("t:grow", "test:host", "grow")
            local ev = events:receive()
            assert(ev.from == pid and ev.result.error, "grow ended normally")
            -- the host and this process keep running after the guest died
            local ch = channel.new(1)
            ch:send("still here")
            return tostring(ev.result.error) .. " | " .. ch:receive()
        end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("memory"), "{text}");
    assert!(text.ends_with("| still here"), "{text}");
}

#[test]
fn an_entry_asking_more_memory_than_the_engine_gives_is_refused() {
    let greedy = Grants {
        memory: Some(1 << 40),
        ..Grants::default()
    };
    let err = engine()
        .load_granted(&component("crasher"), greedy)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("limits.memory 1099511627776 bytes exceeds"),
        "{err}"
    );
}

#[test]
fn a_wasi_sleep_suspends_the_component_and_wakes_it_from_another_thread() {
    let exit = App::new()
        .component("t:crasher", "crasher")
        .run("t:crasher", vec![s("wasi-sleep")]);
    assert_eq!(exit, Ok(s("slept")));
}

#[test]
fn a_second_engine_loads_compiled_components_from_the_disk_cache() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache-test");
    let _ = std::fs::remove_dir_all(&cache);
    let config = EngineConfig {
        cache_dir: Some(cache),
        pool_size: 0,
        ..EngineConfig::default()
    };
    let first = WasmEngine::new(&config).expect("engine");
    first.load(&component("echo")).expect("loads");
    assert_eq!(first.cache_stats(), (0, 1), "first load compiles");
    let second = WasmEngine::new(&config).expect("engine");
    second.load(&component("echo")).expect("loads");
    assert_eq!(second.cache_stats(), (1, 0), "second load hits the cache");
}

#[test]
fn a_spawn_past_the_instance_pool_fails_with_a_retryable_error_and_others_run_on() {
    let config = EngineConfig {
        pool_size: 2,
        ..EngineConfig::default()
    };
    let engine = WasmEngine::new(&config).expect("engine");
    let echo = engine.load(&component("echo")).expect("loads");
    let v = App::new()
        .program(echo.into_program("t:echo"))
        .entry(
            "t:main",
            r#"return function()
            local events = process.events()
            local a = process.spawn_monitored("t:echo", "test:host")
            local b = process.spawn_monitored("t:echo", "test:host")
            local c = process.spawn_monitored("t:echo", "test:host")
            local ev = events:receive()
            assert(ev.from == c, "the third spawn is the one refused")
            local err = ev.result.error
            assert(err:kind() == errors.UNAVAILABLE and err:retryable(), tostring(err))
            -- the two pooled ones still answer
            for _, pid in ipairs({ a, b }) do
                process.send(pid, "ping", 1)
                assert(process.inbox():receive():from() == pid)
            end
            -- once one exits, its slot serves a new process
            process.send(a, "stop")
            assert(events:receive().from == a)
            local d = process.spawn("t:echo", "test:host")
            process.send(d, "ping", 2)
            assert(process.inbox():receive():from() == d)
            return tostring(err)
        end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("cannot instantiate"), "{text}");
}
