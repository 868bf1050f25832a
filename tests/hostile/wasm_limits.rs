//! Components that spread their memory over many core instances, fill
//! tables, define more memories, tables or instances than a process may
//! have, start over their limit, or leave through `wasi:cli/exit`.
//!
//! Each component is written here in WAT and built with the `wat` crate:
//! a main core module `$M` (its memory, a bump `realloc` and `run`, which
//! returns `nil`), plus whatever the case adds before it (grower modules,
//! tables, imports). Under the harness's limits (`memory_per_process`
//! 8 MiB) unless a case says otherwise.

use warren_core::{ErrorKind, Exit, HostLimits, Value};
use warren_tests::{TempDir, engine, run_on};
use warren_wasm::{EngineConfig, Grants, WasmEngine, WasmError, WasmProgram};

use crate::harness::{self, app, attack, attack_on};

/// A WebAssembly page.
const PAGE: u32 = 64 << 10;

/// The per-component caps of `guest-wasm/src/program.rs`
/// (`MAX_MEMORIES_PER_COMPONENT`, `MAX_TABLES_PER_COMPONENT`,
/// `MAX_CORE_INSTANCES_PER_COMPONENT`).
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 8;
const MAX_CORE_INSTANCES: usize = 32;

/// Most elements of one pooled table (wasmtime's default
/// `table_elements`), and the host bytes the limiter counts per element.
const POOL_TABLE_ELEMENTS: u32 = 20_000;
const TABLE_ELEMENT_BYTES: u32 = 8;

/// Parts a case adds to the main module's component.
#[derive(Default)]
struct Parts {
    /// Component items before `$M` (modules, instances, imports).
    defs: String,
    /// `$M`'s imports.
    imports: String,
    /// Its `with` clauses.
    with: String,
    /// What `run` does before it returns `nil`.
    run: String,
    /// Initial pages of `$M`'s memory.
    pages: u32,
}

impl Parts {
    fn new() -> Self {
        Parts {
            pages: 1,
            ..Parts::default()
        }
    }

    /// `count` core instances of one module, each with a memory of
    /// `initial` pages and an export `grow` (memory.grow); `$M` imports
    /// them as `$mgrow<i>`.
    fn memories(mut self, count: usize, initial: u32) -> Self {
        self.defs += &format!(
            r#"(core module $G (memory {initial})
                 (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#
        );
        for i in 0..count {
            self.defs += &format!("(core instance $g{i} (instantiate $G))\n");
            self.imports +=
                &format!(r#"(import "g{i}" "grow" (func $mgrow{i} (param i32) (result i32)))"#);
            self.with += &format!(r#"(with "g{i}" (instance $g{i}))"#);
        }
        self
    }

    /// `count` core instances of one module, each with a funcref table of
    /// `initial` elements and an export `grow` (table.grow); `$M` imports
    /// them as `$tgrow<i>`.
    fn tables(mut self, count: usize, initial: u32) -> Self {
        self.defs += &format!(
            r#"(core module $T (table $t {initial} funcref)
                 (func (export "grow") (param i32) (result i32)
                   (table.grow $t (ref.null func) (local.get 0))))"#
        );
        for i in 0..count {
            self.defs += &format!("(core instance $t{i} (instantiate $T))\n");
            self.imports +=
                &format!(r#"(import "t{i}" "grow" (func $tgrow{i} (param i32) (result i32)))"#);
            self.with += &format!(r#"(with "t{i}" (instance $t{i}))"#);
        }
        self
    }

    /// `count` instances of a module that defines nothing.
    fn empty_instances(mut self, count: usize) -> Self {
        self.defs += "(core module $E)\n";
        for i in 0..count {
            self.defs += &format!("(core instance $e{i} (instantiate $E))\n");
        }
        self
    }

    /// `run` calls `grow` (the import `$<prefix>grow<i>`) by `delta` for
    /// each `i` in `range`, trapping if one returns -1.
    fn grow_each(mut self, prefix: &str, range: std::ops::Range<usize>, delta: u32) -> Self {
        for i in range {
            self.run += &format!(
                "(if (i32.lt_s (call ${prefix}grow{i} (i32.const {delta})) (i32.const 0)) (then unreachable))\n"
            );
        }
        self
    }

    /// `$M`'s own memory grows by `pages` first thing in `run`.
    fn grow_main(mut self, pages: u32) -> Self {
        self.run = format!(
            "(if (i32.lt_s (memory.grow (i32.const {pages})) (i32.const 0)) (then unreachable))\n{}",
            self.run
        );
        self
    }

    /// The component's binary.
    fn build(&self) -> Vec<u8> {
        let Parts {
            defs,
            imports,
            with,
            run,
            pages,
        } = self;
        let wat = format!(
            r#"(component
  {defs}
  (core module $M
    {imports}
    (memory (export "mem") {pages})
    (global $bump (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $r i32)
      (local.set $r (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
      (global.set $bump (i32.add (local.get $r) (local.get 3)))
      (local.get $r))
    (func (export "run") (param i32 i32) (result i32)
      {run}
      ;; ok(nil): the result record at 64 points at one byte 0xc0 at 128
      (i32.store8 (i32.const 128) (i32.const 0xc0))
      (i32.store8 (i32.const 64) (i32.const 0))
      (i32.store (i32.const 68) (i32.const 128))
      (i32.store (i32.const 72) (i32.const 1))
      (i32.const 64)))
  (core instance $m (instantiate $M {with}))
  (type $ek' (enum "not-found" "already-exists" "invalid" "permission-denied" "unavailable" "internal" "canceled" "conflict" "timeout" "rate-limited" "unknown"))
  (export $ek "error-kind" (type $ek'))
  (type $err' (record (field "kind" $ek) (field "message" string) (field "retryable" bool)))
  (export $err "error" (type $err'))
  (type $runt (func (param "args" (list (list u8))) (result (result (list u8) (error $err)))))
  (func $run (type $runt) (canon lift (core func $m "run") (memory (core memory $m "mem")) (realloc (core func $m "realloc"))))
  (export "run" (func $run))
)"#
        );
        match wat::parse_str(&wat) {
            Ok(bytes) => bytes,
            Err(e) => panic!("test component does not parse: {e}\n{wat}"),
        }
    }
}

/// Loads `parts` with `grants` into `engine`.
fn load_on(engine: &WasmEngine, parts: &Parts, grants: Grants) -> Result<WasmProgram, WasmError> {
    let dir = TempDir::new("wasm-limits");
    let path = dir.path().join("case.wasm");
    std::fs::write(&path, parts.build()).expect("write the component");
    engine.load_granted(&path, grants)
}

/// Loads `parts` into the tests' engine, granting `grants`; panics if it
/// is refused.
fn program(parts: &Parts, grants: Grants) -> warren_core::Program {
    match load_on(&engine(), parts, grants) {
        Ok(p) => p.into_program("h:attacker"),
        Err(e) => panic!("the component was refused: {e}"),
    }
}

/// Grants only `limits.memory` of `bytes`.
fn memory_limit(bytes: u64) -> Grants {
    Grants {
        memory: Some(bytes),
        ..Grants::default()
    }
}

/// Runs `parts` as the attack under the harness's limits.
fn attack_parts(parts: &Parts, grants: Grants) -> harness::Outcome {
    attack(app().program(program(parts, grants)), "h:attacker", vec![])
}

/// How the attacker ended, with `retryable` (the judge does not pass it
/// on): run once more on its own.
fn exit_alone(parts: &Parts, grants: Grants, limits: HostLimits) -> Exit {
    let runtime = app().limits(limits).program(program(parts, grants)).start();
    run_on(&runtime, "h:attacker", vec![])
}

/// Asserts the attacker ended normally (with `nil`).
fn assert_normal(out: &harness::Outcome) {
    assert!(matches!(out.exit, Ok(Value::Nil)), "{out:?}");
    out.assert_neighbour_ticks();
}

// F4: the limit bounds the sum of a component's linear memories.

#[test]
fn memories_of_many_core_instances_count_together() {
    // Three growers of one page and the main memory: 4 memories, the
    // most allowed. 3 × 2 MiB fit in 8 MiB; 3 × 3 MiB do not, though
    // each one does.
    let fits = Parts::new()
        .memories(3, 1)
        .grow_each("m", 0..3, (2 << 20) / PAGE - 1);
    assert_normal(&attack_parts(&fits, Grants::default()));

    let over = Parts::new()
        .memories(3, 1)
        .grow_each("m", 0..3, (3 << 20) / PAGE - 1);
    let out = attack_parts(&over, Grants::default());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    let msg = &out.error().message;
    // The third growth is refused: two of 3 MiB, its own page and the
    // main page are held.
    assert!(
        msg.contains("linear memory growing by 3080192 bytes (from 65536 to 3145728) would bring this process to 9502720 bytes, over its limit of 8388608 bytes (memory_per_process of host 'test:host')"),
        "{msg}"
    );
    assert!(
        msg.contains("it has 6422528 bytes of linear memory"),
        "{msg}"
    );
}

#[test]
fn an_entry_memory_limit_bounds_the_sum_too() {
    // limits.memory 4 MiB: three memories of 1.5 MiB each (4.5 MiB).
    let over = Parts::new()
        .memories(3, 0)
        .grow_each("m", 0..3, (3 << 19) / PAGE);
    assert_normal(&attack_parts(&over, memory_limit(5 << 20)));
    let out = attack_parts(&over, memory_limit(4 << 20));
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    assert!(
        out.error()
            .message
            .contains("over its limit of 4194304 bytes (its entry's limits.memory)"),
        "{out:?}"
    );
}

#[test]
fn initial_memories_past_the_limit_together_refuse_the_start() {
    // Four memories of 2.5 MiB each at instantiation (10 MiB), each one
    // under the 8 MiB limit: the start fails as a quota, not a retry.
    let parts = Parts {
        pages: 40,
        ..Parts::new()
    }
    .memories(3, 40);
    let out = attack_parts(&parts, Grants::default());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    assert!(
        out.error().message.contains(
            "a linear memory of 2621440 bytes would bring this process to 10485760 bytes"
        ),
        "{out:?}"
    );
    let exit = exit_alone(&parts, Grants::default(), harness::limits());
    let err = exit.expect_err("the component started");
    assert!(!err.retryable, "{err:?}");
}

// F5: tables are counted like linear memory.

#[test]
fn initial_tables_count_against_the_entry_limit() {
    // limits.memory 1 MiB: the main page and seven full pooled tables
    // (7 × 160,000 bytes) do not fit; six do.
    let fits = Parts::new().tables(6, POOL_TABLE_ELEMENTS);
    assert_normal(&attack_parts(&fits, memory_limit(1 << 20)));

    let over = Parts::new().tables(7, POOL_TABLE_ELEMENTS);
    let out = attack_parts(&over, memory_limit(1 << 20));
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    let msg = &out.error().message;
    let bytes = POOL_TABLE_ELEMENTS * TABLE_ELEMENT_BYTES;
    assert!(
        msg.contains(&format!(
            "a table of {POOL_TABLE_ELEMENTS} elements ({bytes} bytes at {TABLE_ELEMENT_BYTES} per element)"
        )),
        "{msg}"
    );
    assert!(msg.contains("its entry's limits.memory"), "{msg}");
    assert!(msg.contains("960000 bytes of tables"), "{msg}");
    let exit = exit_alone(&over, memory_limit(1 << 20), harness::limits());
    assert!(!exit.expect_err("the component started").retryable);
}

#[test]
fn growing_tables_count_with_linear_memory() {
    // 7 MiB of linear memory, then seven tables of one element grown to
    // 20,000: the seventh passes 8 MiB (the sixth leaves 88,568 bytes).
    let parts = Parts::new()
        .tables(7, 1)
        .grow_main((7 << 20) / PAGE - 1)
        .grow_each("t", 0..7, POOL_TABLE_ELEMENTS - 1);
    let out = attack_parts(&parts, Grants::default());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    let msg = &out.error().message;
    assert!(
        msg.contains("a table growing by 19999 elements to 20000 (159992 bytes at 8 per element) would bring this process to 8460032 bytes, over its limit of 8388608 bytes (memory_per_process"),
        "{msg}"
    );
    assert!(
        msg.contains("it has 7340032 bytes of linear memory, 960008 bytes of tables"),
        "{msg}"
    );

    // Six fit. A table grown past its pooled slot (20,000 elements) gets
    // -1 from `table.grow`, as past a declared maximum, which this
    // component turns into a trap.
    let fits = Parts::new()
        .tables(6, 0)
        .grow_main((7 << 20) / PAGE - 1)
        .grow_each("t", 0..6, POOL_TABLE_ELEMENTS);
    assert_normal(&attack_parts(&fits, Grants::default()));
    let past_pool = Parts::new()
        .tables(1, 0)
        .grow_each("t", 0..1, POOL_TABLE_ELEMENTS + 1);
    let out = attack_parts(&past_pool, Grants::default());
    out.assert_ended(ErrorKind::Internal, "unreachable");
}

#[test]
fn tables_count_against_memory_total_and_are_given_back() {
    // memory_total 4 MiB, each process under its own 8 MiB: 3 MiB of
    // linear memory fits, the tables after it do not. Three rounds: what
    // a refused process held is returned, so each fails the same way.
    let limits = HostLimits {
        memory_total: 4 << 20,
        ..harness::limits()
    };
    let parts = Parts::new()
        .tables(7, 0)
        .grow_main((3 << 20) / PAGE - 1)
        .grow_each("t", 0..7, POOL_TABLE_ELEMENTS);
    let runtime = app()
        .limits(limits)
        .program(program(&parts, Grants::default()))
        .start();
    for round in 0..3 {
        let out = attack_on(&runtime, "h:attacker", vec![]);
        out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
        let msg = &out.error().message;
        assert!(
            msg.contains("has no room for 160000 more bytes (memory_total 4194304) for a table of 20000 elements"),
            "round {round}: {msg}"
        );
    }
}

// F6: per-component caps on memories, tables and core instances.

/// Asserts `parts` is refused at load, naming `what` and the bound.
fn assert_refused(engine: &WasmEngine, parts: &Parts, what: &str) {
    let err = match load_on(engine, parts, Grants::default()) {
        Ok(_) => panic!("a component with {what} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("needs more than one process may have"),
        "{err}"
    );
    assert!(err.contains(what), "{what:?} not in {err}");
}

#[test]
fn more_memories_than_a_process_may_have_are_refused_at_load() {
    // Five zero-page growers and the main memory: 6 memories, 0 bytes.
    let parts = Parts::new().memories(MAX_MEMORIES + 1, 0);
    assert_refused(
        &engine(),
        &parts,
        "The component transitively contains 6 Wasm linear memories, which exceeds the configured maximum of 4",
    );
    // The 990-memory component of the red-team pass: its instances are
    // counted first.
    let parts = Parts::new().memories(989, 0);
    assert_refused(
        &engine(),
        &parts,
        "990 core module instances, which exceeds the configured maximum of 32",
    );
}

#[test]
fn more_tables_than_a_process_may_have_are_refused_at_load() {
    let parts = Parts::new().tables(MAX_TABLES + 1, 0);
    assert_refused(
        &engine(),
        &parts,
        "The component transitively contains 9 tables, which exceeds the configured maximum of 8",
    );
}

#[test]
fn more_core_instances_than_a_process_may_have_are_refused_at_load() {
    // 32 empty instances and the main one: 33 instances, no memory.
    let parts = Parts::new().empty_instances(MAX_CORE_INSTANCES);
    assert_refused(
        &engine(),
        &parts,
        "The component transitively contains 33 core module instances, which exceeds the configured maximum of 32",
    );
}

#[test]
fn the_caps_hold_without_the_pool_too() {
    // Instances allocated on demand (WARREN_WASM_POOL=0): each memory
    // would reserve its own address space, so the load still refuses.
    let config = EngineConfig {
        pool_size: 0,
        ..EngineConfig::default()
    };
    let on_demand = WasmEngine::new(&config).expect("engine");
    assert_refused(
        &on_demand,
        &Parts::new().memories(MAX_MEMORIES, 0),
        "it defines 5 linear memories, over the most one component may have (4)",
    );
    assert_refused(
        &on_demand,
        &Parts::new().tables(MAX_TABLES + 1, 0),
        "it defines 9 tables, over the most one component may have (8)",
    );
}

#[test]
fn over_a_cap_is_refused_while_at_every_cap_a_component_runs() {
    // One memory over: refused, taking nothing from the pool.
    let over = Parts::new().memories(MAX_MEMORIES, 0);
    assert_refused(&engine(), &over, "5 Wasm linear memories");
    // 4 memories, 8 tables, 32 core instances: loads, starts and ends
    // next to the neighbour.
    let parts = Parts::new()
        .memories(MAX_MEMORIES - 1, 0)
        .tables(MAX_TABLES, 1)
        .empty_instances(MAX_CORE_INSTANCES - MAX_MEMORIES - MAX_TABLES)
        .grow_each("m", 0..MAX_MEMORIES - 1, 1)
        .grow_each("t", 0..MAX_TABLES, 1);
    assert_normal(&attack_parts(&parts, Grants::default()));
    // Components built by cargo for wasm32-wasip2 (3 core instances, 1
    // memory, 2 tables each) are far from the caps.
    let all_granted = Grants {
        network: true,
        ..Grants::default()
    };
    for name in [
        "chanprobe",
        "crasher",
        "echo",
        "hasher",
        "hostile",
        "httpd",
        "kv",
        "net_probe",
        "probe",
        "roundtrip",
        "shapes",
        "wasi_probe",
    ] {
        let path = warren_tests::component(name);
        if let Err(e) = engine().load_granted(&path, all_granted.clone()) {
            let e = e.to_string();
            assert!(
                !e.contains("needs more than one process may have"),
                "{name}: {e}"
            );
        }
    }
}

// F9: how a component that cannot start, or leaves, ends.

#[test]
fn an_initial_memory_over_the_limit_is_rate_limited_not_retryable() {
    // 1000 pages (62.5 MiB, under the engine's 64 MiB) with an 8 MiB limit.
    let parts = Parts {
        pages: 1000,
        ..Parts::new()
    };
    let out = attack_parts(&parts, Grants::default());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    assert!(
        out.error()
            .message
            .contains("a linear memory of 65536000 bytes would bring this process to 65536000 bytes, over its limit of 8388608 bytes"),
        "{out:?}"
    );
    let err = exit_alone(&parts, Grants::default(), harness::limits())
        .expect_err("the component started");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err:?}");
    assert!(!err.retryable, "{err:?}");
}

#[test]
fn a_start_function_that_traps_is_a_trap_not_retryable() {
    let mut parts = Parts::new();
    parts.defs = r#"(core module $S (func $s unreachable) (start $s))
        (core instance $s (instantiate $S))"#
        .to_owned();
    let out = attack_parts(&parts, Grants::default());
    out.assert_ended(ErrorKind::Internal, "trap");
    let err = exit_alone(&parts, Grants::default(), harness::limits())
        .expect_err("the component started");
    assert!(!err.retryable, "{err:?}");
}

/// A component whose `run` calls `wasi:cli/exit` with `call` (`exit`
/// with a `result` discriminant, or `exit-with-code` with a code).
fn exiting(call: &str) -> Parts {
    let mut parts = Parts::new();
    parts.defs = r#"(import "wasi:cli/exit@0.2.0" (instance $exit
            (export "exit" (func (param "status" (result))))
            (export "exit-with-code" (func (param "status-code" u8)))))
        (core func $exit (canon lower (func $exit "exit")))
        (core func $code (canon lower (func $exit "exit-with-code")))
        (core instance $wasi (export "exit" (func $exit)) (export "exit-with-code" (func $code)))"#
        .to_owned();
    parts.imports = r#"(import "wasi" "exit" (func $exit (param i32)))
        (import "wasi" "exit-with-code" (func $code (param i32)))"#
        .to_owned();
    parts.with = r#"(with "wasi" (instance $wasi))"#.to_owned();
    parts.run = format!("{call}\nunreachable");
    parts
}

#[test]
fn exit_with_status_zero_ends_normally() {
    assert_normal(&attack_parts(
        &exiting("(call $exit (i32.const 0))"),
        Grants::default(),
    ));
    assert_normal(&attack_parts(
        &exiting("(call $code (i32.const 0))"),
        Grants::default(),
    ));
}

#[test]
fn exit_with_a_failure_status_fails_naming_it() {
    let out = attack_parts(&exiting("(call $code (i32.const 3))"), Grants::default());
    out.assert_ended(ErrorKind::Internal, "exited with status 3 (wasi:cli/exit)");
    // `exit(err)`, what Rust's `std::process::exit(n)` calls for n ≠ 0.
    let out = attack_parts(&exiting("(call $exit (i32.const 1))"), Grants::default());
    out.assert_ended(ErrorKind::Internal, "exited with status 1");
    assert!(!out.error().message.contains("trap"), "{out:?}");
}

// ---------------------------------------------------------------------------
// F7: memory and table slots run out only with process slots.
// ---------------------------------------------------------------------------

/// Spawns the component `h:spinner` `n` times, monitored, and reports how
/// each ended ("Kind: message", " | "-joined).
const SPAWNER: &str = r#"
return function(n)
    for _ = 1, n do process.spawn_monitored("h:spinner", "test:host") end
    local events, out = process.events(), {}
    for i = 1, n do
        local e = events:receive().result.error
        out[i] = e and (tostring(e:kind()) .. ": " .. tostring(e:message())) or "ended"
    end
    return table.concat(out, " | ")
end"#;

#[test]
fn a_pool_of_n_processes_starts_n_components_at_every_cap() {
    // A pool of 8 processes and 4 components of 4 memories and 8 tables
    // each, which spin until the cpu budget ends them: the 4 are the
    // attacker's host's share of the pool (8 over the app's 2 hosts).
    // With one memory slot per process, the first two took all 8 and the
    // others failed to start: that is how one host's empty memories kept
    // every other host's components from starting.
    let small = WasmEngine::new(&EngineConfig {
        pool_size: 8,
        ..EngineConfig::default()
    })
    .expect("engine");
    let mut spinner = Parts::new()
        .memories(MAX_MEMORIES - 1, 0)
        .tables(MAX_TABLES, 1);
    spinner.run = "(loop $spin (br $spin))".to_owned();
    let program = match load_on(&small, &spinner, Grants::default()) {
        Ok(p) => p.into_program("h:spinner"),
        Err(e) => panic!("the component was refused: {e}"),
    };
    let out = attack(
        app().program(program).entry("h:attacker", SPAWNER),
        "h:attacker",
        vec![Value::Int(4)],
    );
    let ends = out.value();
    let ends: Vec<&str> = ends.split(" | ").collect();
    assert_eq!(ends.len(), 4, "{ends:?}");
    for end in ends {
        assert!(
            end.starts_with("RateLimited: cpu budget exceeded"),
            "a spinner did not run to its budget: {end}"
        );
    }
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// F8: one host cannot take the whole instance pool.
// ---------------------------------------------------------------------------

/// Spawns `n` echo components on the attacker's host, each pinged, and
/// keeps those that answer; then runs `h:victim` on the other host.
/// Returns "started=<n> refused=<n> victim=<its result> | <a refusal>".
const HOARDER: &str = r#"
local time = require("time")
return function(n)
    local inbox, events = process.inbox(), process.events()
    for i = 1, n do
        local pid = process.spawn_monitored("h:echo", "test:host")
        process.send(pid, "ping", i)
    end
    local started, refused, why = 0, 0, ""
    local give_up = time.after("20s")
    while started + refused < n do
        local r = channel.select({ inbox:case_receive(), events:case_receive(), give_up:case_receive() })
        if r.channel == give_up then error("the echoes did not all answer or end") end
        if r.channel == inbox then
            started = started + 1
        else
            refused = refused + 1
            local e = r.value.result.error
            why = e and (tostring(e:kind()) .. ": " .. tostring(e:message())) or "ended"
        end
    end
    local victim = process.spawn_monitored("h:victim", "test:other")
    local r = channel.select({ events:case_receive(), time.after("20s"):case_receive() })
    assert(r.channel == events, "the victim did not end")
    local res = r.value.result
    local got = res.error and ("failed: " .. tostring(res.error:message())) or tostring(res.value)
    return string.format("started=%d refused=%d victim=%s | %s", started, refused, got, why)
end"#;

/// On the other host: one echo component, pinged, its answer returned.
const VICTIM: &str = r#"
local time = require("time")
return function()
    local pid = process.spawn_monitored("h:echo", "test:other")
    process.send(pid, "ping", "victim")
    local inbox, events = process.inbox(), process.events()
    local r = channel.select({ inbox:case_receive(), events:case_receive(), time.after("10s"):case_receive() })
    if r.channel == inbox then return r.value:payload():data() end
    if r.channel == events then return "echo ended: " .. tostring(r.value.result.error:message()) end
    return "no answer"
end"#;

#[test]
fn one_host_cannot_hold_the_whole_instance_pool() {
    // A pool of 8 and two hosts: the attacker's host gets its share (4)
    // and more, up to the last quarter (2), which stays for the other
    // host. Before, it took all 8 and the victim's echo failed to start
    // ("maximum concurrent limit").
    let small = WasmEngine::new(&EngineConfig {
        pool_size: 8,
        ..EngineConfig::default()
    })
    .expect("engine");
    let echo = small
        .load(&warren_tests::component("echo"))
        .expect("echo loads")
        .into_program("h:echo");
    let exit = warren_tests::App::new()
        .program(echo)
        .entry("h:hoarder", HOARDER)
        .entry("h:victim", VICTIM)
        .run("h:hoarder", vec![Value::Int(8)]);
    let report = match exit {
        Ok(v) => v.as_str().map(str::to_owned).unwrap_or_default(),
        Err(e) => panic!("the hoarder failed: {e}"),
    };
    assert!(
        report.starts_with("started=6 refused=2 victim=victim | "),
        "{report}"
    );
    assert!(report.contains("RateLimited: "), "{report}");
    assert!(
        report.contains("host 'test:host' holds 6 of the 8 slots, past its share of 4"),
        "{report}"
    );
}

#[test]
fn holding_more_wasi_handles_than_allowed_ends_the_component_naming_the_bound() {
    // 20,000 pollables from `wasi:clocks` (wasmtime-wasi's own handles,
    // not the process interface's): past MAX_RESOURCES the component ends
    // RATE_LIMITED with the bound's name, as for its channels and timers,
    // where wasmtime said only "resource table has no free keys".
    let mut parts = Parts::new();
    parts.defs = r#"(import "wasi:io/poll@0.2.0" (instance $poll
            (export "pollable" (type (sub resource)))))
        (alias export $poll "pollable" (type $pollable))
        (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
            (alias outer 1 $pollable (type $p))
            (export "pollable" (type (eq $p)))
            (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
        (core func $sub (canon lower (func $clock "subscribe-duration")))
        (core instance $wasi (export "subscribe" (func $sub)))"#
        .to_owned();
    parts.imports =
        r#"(import "wasi" "subscribe" (func $sub (param i64) (result i32)))"#.to_owned();
    parts.with = r#"(with "wasi" (instance $wasi))"#.to_owned();
    parts.run = r#"(local $i i32)
        (loop $more
            (drop (call $sub (i64.const 1000000000)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 20000))))"#
        .to_owned();
    let out = attack_parts(&parts, Grants::default());
    out.assert_ended(ErrorKind::RateLimited, "at most 10000 channels, timers");
    assert!(out.error().message.contains("MAX_RESOURCES"), "{out:?}");
}
