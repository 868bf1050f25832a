//! A process that runs without blocking is preempted so that its neighbours
//! on the same worker keep running: timers fire, messages flow, and the
//! spinner can still be terminated.

use warren_core::Value;
use warren_tests::*;

/// Far above a few slices, far below forever: a worker stuck in a loop
/// never gets here at all.
const FEW_SLICES_MS: i64 = 2_000;

#[test]
fn a_component_in_an_infinite_loop_is_preempted_and_a_neighbour_timer_fires() {
    let v = App::new()
        .workers(1)
        .component("t:crasher", "crasher")
        .entry(
            "t:main",
            r#"local time = require("time")
            return function()
                local events = process.events()
                local spinners = {}
                for i = 1, 3 do
                    spinners[i] = process.spawn_monitored("t:crasher", "test:host", "spin")
                end
                time.sleep("1ms") -- let them start spinning
                local t0 = time.now()
                time.sleep("10ms")
                local waited = time.now():sub(t0):milliseconds()
                for _, pid in ipairs(spinners) do process.terminate(pid) end
                for _ = 1, #spinners do
                    local ev = events:receive()
                    assert(tostring(ev.result.error):find("terminated"), tostring(ev.result.error))
                end
                return waited
            end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    let Value::Int(waited) = v else {
        panic!("{v:?}")
    };
    assert!(
        (10..FEW_SLICES_MS).contains(&waited),
        "timer fired after {waited} ms"
    );
}
