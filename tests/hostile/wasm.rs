//! Components that trap, loop, grow without bound or ask the host for
//! more than it allows per process; each ends (or is refused) alone.

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, app, attack, attack_on, n, s, wasm};

#[test]
fn infinite_loop_is_preempted_then_killed_by_the_cpu_budget() {
    let out = attack(
        app().component("h:attacker", "crasher"),
        "h:attacker",
        vec![s("spin")],
    );
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(5);
}

#[test]
fn unbounded_growth_ends_with_a_memory_limit_reason() {
    let out = attack(
        app().component("h:attacker", "crasher"),
        "h:attacker",
        vec![s("grow")],
    );
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    assert!(
        out.error().message.contains("memory_per_process"),
        "{out:?}"
    );
}

#[test]
fn memory_of_a_killed_component_is_returned_to_the_host() {
    // Room for one component at its limit, not two: if the first one's
    // memory were kept, the later ones would hit memory_total instead.
    let limits = HostLimits {
        memory_total: 12 << 20,
        ..harness::limits()
    };
    let runtime = app()
        .limits(limits)
        .component("h:attacker", "crasher")
        .start();
    for _ in 0..3 {
        let out = attack_on(&runtime, "h:attacker", vec![s("grow")]);
        out.assert_ended(ErrorKind::RateLimited, "memory_per_process");
    }
}

#[test]
fn memory_total_stops_a_component_under_its_own_limit() {
    let limits = HostLimits {
        memory_total: 4 << 20,
        ..harness::limits()
    };
    let app = app().limits(limits).component("h:attacker", "crasher");
    let out = attack(app, "h:attacker", vec![s("grow")]);
    out.assert_ended(ErrorKind::RateLimited, "memory_total");
}

#[test]
fn an_instance_never_sees_what_an_earlier_one_wrote() {
    // Instances of one component reuse pooled slots (the host keeps their
    // first 128 KiB resident and wipes only the pages they wrote); each
    // scribbles over 256 KiB of static memory and reports what it found.
    let runtime = app().component("h:attacker", "hostile").start();
    for round in 0..4 {
        let out = attack_on(&runtime, "h:attacker", vec![s("scribble")]);
        assert_eq!(out.value(), "dirty:0", "round {round}: {out:?}");
    }
}

#[test]
fn a_panic_ends_the_component_with_its_message() {
    let out = attack(
        app().component("h:attacker", "crasher"),
        "h:attacker",
        vec![s("panic")],
    );
    out.assert_ended(ErrorKind::Internal, "deliberate panic");
}

#[test]
fn stack_exhaustion_traps() {
    let out = attack(
        app().component("h:attacker", "crasher"),
        "h:attacker",
        vec![s("recurse")],
    );
    out.assert_ended(ErrorKind::Internal, "trap");
}

#[test]
fn a_channel_cannot_buffer_more_than_the_host_allows() {
    let out = wasm(vec![s("channel-fill"), n(1_000_000_000)]);
    assert_eq!(out.value(), "Internal:1024");
    out.assert_neighbour_ticks();
}

#[test]
fn holding_more_handles_than_allowed_ends_the_component() {
    // The bound is named (wasmtime said only "resource table has no free
    // keys", as an internal trap).
    let out = wasm(vec![s("timers"), n(20_000)]);
    out.assert_ended(ErrorKind::RateLimited, "at most 10000 channels, timers");
    assert!(out.error().message.contains("MAX_RESOURCES"), "{out:?}");
    // A listen past it is refused as a call, not a trap.
    let out = wasm(vec![s("listen-long"), n(8), n(20_000)]);
    let value = out.value();
    assert_eq!(value, "RateLimited:10000");
    out.assert_neighbour_ticks();
}

/// The harness's limits with room for the `hostile` component's own
/// memory and little more: 2 MiB a process.
fn tight() -> HostLimits {
    HostLimits {
        memory_per_process: 2 << 20,
        ..harness::limits()
    }
}

#[test]
fn a_components_handles_count_against_its_memory() {
    // Each handle is host memory (HANDLE_BYTES): 10,000 timers are 1.9 MB,
    // more than a 2 MiB process has beside its linear memory.
    let tenant = app().limits(tight()).component("h:attacker", "hostile");
    let out = attack(tenant, "h:attacker", vec![s("timers"), n(10_000)]);
    out.assert_ended(ErrorKind::RateLimited, "one more handle");
    assert!(
        out.error().message.contains("memory_per_process"),
        "{out:?}"
    );
    // A dropped handle gives its bytes back: 100 rounds of 2,000.
    let tenant = app().limits(tight()).component("h:attacker", "hostile");
    let out = attack(tenant, "h:attacker", vec![s("churn"), n(100), n(2_000)]);
    assert_eq!(out.value(), "ok:200000");
    out.assert_neighbour_ticks();
}

#[test]
fn a_component_gets_at_most_max_random_bytes_in_one_call() {
    // The host builds the bytes before the guest takes them: 64 MiB a
    // call, whatever the process's limit, before the cap.
    let most = warren_wasm::MAX_RANDOM_BYTES;
    let out = wasm(vec![s("random"), n(i64::try_from(most).expect("small"))]);
    assert_eq!(out.value(), format!("ok:{most}"));
    let out = wasm(vec![s("random"), n(1 << 20)]);
    out.assert_ended(ErrorKind::Internal, "exceeds limit");
    out.assert_neighbour_ticks();
}

#[test]
fn a_huge_log_line_is_cut_and_the_component_continues() {
    let out = wasm(vec![s("long-log"), n(1 << 20)]);
    assert_eq!(out.value(), "ok:1");
    out.assert_neighbour_ticks();
}

#[test]
fn a_value_that_sends_while_it_is_encoded_is_sent_after_what_it_sent() {
    // The SDK's `send` encodes into a buffer it keeps between sends; a
    // `Serialize` that sends from inside gets a buffer of its own.
    let out = wasm(vec![s("reentrant-send")]);
    assert_eq!(out.value(), "inner:1,outer:2");
}
