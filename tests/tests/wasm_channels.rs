//! Channels, `listen`, timers and `select` from a component: the
//! `warren:process/channels` interface and the SDK's `Select` and `select!`.

use warren_tests::*;

fn chanprobe(echo_is_lua: bool) -> Vec<String> {
    let app = App::new().component("t:chanprobe", "chanprobe");
    let app = if echo_is_lua {
        app.entry("t:echo", LUA_ECHO)
    } else {
        app.component("t:echo", "echo")
    };
    let v = app.run("t:chanprobe", vec![s(HOST)]).expect("probe ran");
    strings(v)
}

const EXPECTED: &[&str] = &[
    "full:ErrorKind::Internal",
    "buffered:Some(1):Some(\"two\")",
    "closed:Some(true):None",
    "send-closed:ErrorKind::Invalid",
    "recv-empty:ErrorKind::Internal",
    "try:true",
    "select-send:true:Some(\"queued\")",
    "after:true",
    "after-again:ErrorKind::Internal",
    "timeout:true",
    "inbox-send:ErrorKind::Invalid",
    "reserved:ErrorKind::Invalid",
    "listen:Some(7):Some(\"other\")",
    "unlistened:None",
    "macro-message:ping",
    "macro-exit:true",
    "macro-timeout:true",
    "closed-feeds:Some(\"self\"):None:true:true",
];

#[test]
fn a_component_uses_channels_listen_timers_and_select_with_a_component_peer() {
    assert_eq!(chanprobe(false), EXPECTED);
}

#[test]
fn a_component_uses_channels_listen_timers_and_select_with_a_lua_peer() {
    assert_eq!(chanprobe(true), EXPECTED);
}
