//! Handles held by many processes of one host together (red-team F6): 85
//! processes, each under its own `max_open_handles`, opened files until
//! the runtime's file descriptors ran out, and a process on another host
//! then failed every fs open, SQLite open and HTTP connect with "Too many
//! open files".
//!
//! Guaranteed: a host's processes hold at most `max_handles_per_host`
//! handles together; the open past it is closed and refused with
//! `RATE_LIMITED` naming the limit and the host; a closed handle and an
//! ended process give their handles back (exactly: no leak, no double
//! count); another host's processes open files while the first is at its
//! cap.

use std::path::PathBuf;
use std::sync::Arc;

use warren_core::HostLimits;
use warren_lua::Volumes;
use warren_tests::{OTHER_HOST, grants};

use crate::harness::{app, attack_on, limits};

/// A volume root with one file, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "warren-hostile-handles-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("root");
        std::fs::write(dir.join("f.txt"), "data").expect("file");
        Dir(dir)
    }

    fn volumes(&self) -> Arc<Volumes> {
        let mut v = Volumes::new();
        let vol = warren_fs::Volume::open("app.fs:data", &self.0, 0o755, false).expect("volume");
        v.insert(vol);
        Arc::new(v)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens `f.txt` until refused (at most 50), reports how many it holds
/// and why it stopped, then on "close" closes them all and on "exit" ends.
const OPENER: &str = r#"local fs = require("fs")
return function(parent)
    local vol = assert(fs.get("app.fs:data"))
    local inbox = process.inbox()
    local held, err = {}, nil
    for _ = 1, 50 do
        local f, e = vol:open("f.txt", "r")
        if not f then err = e break end
        held[#held + 1] = f
    end
    local why = "none"
    if err then
        local m = err:message()
        if m:find("max_handles_per_host (40)", 1, true) and m:find("'test:host'", 1, true) then
            why = "host"
        elseif m:find("max_open_handles (16)", 1, true) then
            why = "own"
        else
            why = m
        end
        why = err:kind() .. ":" .. why
    end
    process.send(parent, "opened", #held .. ":" .. why)
    while true do
        local t = inbox:receive():topic()
        if t == "close" then
            for _, f in ipairs(held) do f:close() end
            held = {}
            process.send(parent, "closed", "ok")
        elseif t == "exit" then
            return #held
        end
    end
end"#;

/// Fills the host's 40 handles with openers of 16 each (16, 16, 8), tries
/// once more itself, has an opener on the other host open 50, and checks
/// that a close and an exit give the handles back, exactly.
const ATTACKER: &str = r#"local fs = require("fs")
local time = require("time")
return function()
    local me = process.pid()
    local inbox = process.inbox()
    local events = process.events()
    local function reply(topic)
        local r = channel.select({ inbox:case_receive(), time.after("10s"):case_receive() })
        assert(r.channel == inbox, "no " .. topic .. " in time")
        assert(r.value:topic() == topic, r.value:topic())
        return r.value:payload():data()
    end
    local out, kids = {}, {}
    local function open(name, host)
        local pid = process.spawn_monitored("h:opener", host, me)
        kids[name] = pid
        out[#out + 1] = name .. "=" .. reply("opened")
    end
    open("A", "test:host")
    open("B", "test:host")
    open("C", "test:host")
    local vol = assert(fs.get("app.fs:data"))
    local f, e = vol:open("f.txt", "r")
    out[#out + 1] = "self=" .. (f and "ok" or e:kind())
    open("D", "test:other")
    process.send(kids.C, "close")
    reply("closed")
    f, e = vol:open("f.txt", "r")
    out[#out + 1] = "after-close=" .. (f and "ok" or e:kind())
    if f then f:close() end
    process.send(kids.A, "exit")
    local r = channel.select({ events:case_receive(), time.after("10s"):case_receive() })
    assert(r.channel == events and r.value.from == kids.A, "A did not end")
    open("E", "test:host")
    open("F", "test:host")
    for _, name in ipairs({ "B", "C", "D", "E", "F" }) do process.send(kids[name], "exit") end
    return table.concat(out, " ")
end"#;

#[test]
fn processes_of_one_host_together_stop_at_max_handles_per_host_and_get_them_back() {
    let dir = Dir::new("perhost");
    let g = grants(&[("fs.get", "app.fs:data")]);
    let a = app()
        .limits(HostLimits {
            max_handles_per_host: 40,
            allow_hosts: Some(vec![OTHER_HOST.into()]),
            ..limits()
        })
        .extension(dir.volumes())
        .granted("h:opener", OPENER, g.clone())
        .granted("h:attacker", ATTACKER, g);
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "A=16:RateLimited:own B=16:RateLimited:own C=8:RateLimited:host self=RateLimited \
         D=50:none after-close=ok E=16:RateLimited:own F=8:RateLimited:host"
    );
}
