//! What a process can make the host hold through `http_client` response
//! bodies, and what an ungranted call costs the host before it is refused.
//!
//! Guaranteed (lib.rs and room.rs of warren-http, io/http.rs and io/fs.rs
//! of the Lua front-end):
//! - the bytes of response bodies being read are taken, before each
//!   allocation grows, from the process's room (its `memory_per_process`,
//!   shared with what its calls in flight hold) and from its host's
//!   `memory_total`: a request that does not fit fails with `RATE_LIMITED`
//!   (retryable); a `request_batch` shares one running cap, past which a
//!   member fails with `INVALID` ("past what the process may hold") and
//!   stops reading, room going to members in list order;
//! - the grant (`http_client.request` on the URL's destination, `fs.get`
//!   on the volume, its write bit) is checked before anything is copied
//!   out of the process, before an operation slot is taken: an ungranted
//!   call is `PERMISSION_DENIED` whatever it carries and whatever the
//!   process has in flight.
//!
//! Each case runs against a real server on 127.0.0.1 (`/big?N` sends N
//! bytes, `/big-slow?N` announces them and waits 1.5 s before sending),
//! asserts the exact outcome and that the neighbour kept ticking; the
//! memory cases also sample the runtime's resident set while the attack
//! runs, alone on the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use warren_core::{Grants, Value};
use warren_lua::Volumes;
use warren_tests::{App, TempDir, grants, rss_bytes};

use crate::harness::{Outcome, alone, app, attack, limits};

// The same server as io_surface's (whose module is private to it).
#[expect(clippy::duplicate_mod, reason = "io_surface keeps its copy private")]
#[path = "../tests/io/server.rs"]
mod server;
use server::Server;

const MIB: i64 = 1 << 20;

/// The harness's `memory_per_process`, as messages quote it.
const PER_PROCESS: &str = "(8388608 bytes)";

/// Reaches the test server (loopback needs its own grant).
fn local_grants() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// The server and volumes `app.fs:data` and `app.fs:ro` (read-only), but
/// not `app.fs:secret`.
fn all_grants() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
        ("fs.get", "app.fs:data"),
        ("fs.get", "app.fs:ro"),
    ])
}

/// Prepended to every attacker: `res` (a `nil, err` result as
/// "Kind/retryable: message", anything else as "ok"), `kind` (just the
/// kind), `tally` (counts the values `n` senders send on a channel).
const PRELUDE: &str = r#"
local http = require("http_client")
local fs = require("fs")
local time = require("time")
local function res(v, err)
    if v == nil and err ~= nil then
        return tostring(err:kind()) .. "/" .. tostring(err:retryable()) .. ": " .. tostring(err:message())
    end
    if v == nil then return "nil" end
    return "ok"
end
local function kind(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) end
    if v == nil then return "nil" end
    return "ok"
end
local function tally(results, n, what)
    local counts = {}
    for _ = 1, n do
        local r = channel.select({ results:case_receive(), time.after("25s"):case_receive() })
        assert(r.channel == results, what .. " did not end")
        counts[r.value] = (counts[r.value] or 0) + 1
    end
    local keys = {}
    for k, c in pairs(counts) do keys[#keys + 1] = k .. "=" .. c end
    table.sort(keys)
    return table.concat(keys, " ")
end
"#;

fn src(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

/// The harness's app with the attacker (`source`, granted `g`).
fn with_attacker(source: &str, g: Grants) -> App {
    app().granted("h:attacker", &src(source), g)
}

/// The outcome's value split on " | ".
fn parts(out: &Outcome) -> Vec<String> {
    out.value().split(" | ").map(str::to_owned).collect()
}

/// The most the runtime's resident set grew over what it was before
/// `attack`, sampled every 2 ms while it runs; and what it returned.
fn peak_growth<T>(attack: impl FnOnce() -> T) -> (T, u64) {
    let before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                peak.fetch_max(rss_bytes(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let out = attack();
    done.store(true, Ordering::Release);
    sampler.join().expect("sampler");
    let grown = peak.load(Ordering::Acquire).saturating_sub(before);
    (out, grown)
}

/// How much the runtime may grow while a process of 8 MiB reads bodies:
/// the 8 MiB it may hold (a body's capacity is counted, not only its
/// length), its copy in the Lua VM once delivered (8 MiB), and per
/// connection hyper's read buffer (at most about 400 KiB each, 64 of
/// them), with slack for the allocator. The old code held every member's
/// whole body: 64 × 6 MiB = 384 MiB for one batch.
const RSS_BOUND: u64 = 96 << 20;

// ---------------------------------------------------------------------------
// 1. Response bodies count against the process and its host
// ---------------------------------------------------------------------------

#[test]
fn a_batch_of_64_big_bodies_holds_at_most_what_the_process_may_hold() {
    // 64 × 6 MiB for a process of 8 MiB. The first member's head comes 1 s
    // after the others': its body still gets the room (room goes in list
    // order), every other member fails INVALID as it would pass the
    // batch's cap, and stops reading (or has its body dropped). The
    // runtime never holds more than the cap in bodies.
    let server = Server::start();
    let source = r#"
return function(late, fast)
    local reqs = { { "GET", late, { timeout = 20 } } }
    for i = 2, 64 do reqs[i] = { "GET", fast .. "&i=" .. i, { timeout = 20 } } end
    local resps, errs = http.request_batch(reqs)
    local ok, kinds = 0, {}
    for i = 1, 64 do
        if resps[i] then ok = ok + 1 end
        if errs and errs[i] then kinds[#kinds + 1] = tostring(errs[i]:kind()) end
    end
    local first = resps[1] and #resps[1].body or 0
    local msg = errs and errs[64] and errs[64]:message() or "none"
    return table.concat({ ok, first, #kinds, (table.concat(kinds, ","):gsub("Invalid,?", "")), msg }, " | ")
end"#;
    let args = vec![
        Value::str(server.url(&format!("/big-late?{}", 6 * MIB))),
        Value::str(server.url(&format!("/big?{}", 6 * MIB))),
    ];
    let (out, grown) =
        alone(|| peak_growth(|| attack(with_attacker(source, local_grants()), "h:attacker", args)));
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r[..4], ["1", "6291456", "63", ""], "{r:?}");
    assert!(r[4].contains("past what the process may hold"), "{}", r[4]);
    assert!(r[4].contains(PER_PROCESS), "{}", r[4]);
    assert!(
        grown < RSS_BOUND,
        "the runtime grew by {} MiB for a process of 8 MiB",
        grown >> 20
    );
}

#[test]
fn six_batches_from_coroutines_share_the_process_room() {
    // 6 batches at once (6 of the 8 operations the process may have in
    // flight), 16 × 3 MiB each: 288 MiB of bodies, read into the 8 MiB
    // the process may hold. Members that do not fit fail, INVALID within
    // their batch or RATE_LIMITED for the room other batches hold.
    let server = Server::start();
    let source = r#"
return function(url)
    local results = channel.new(200)
    for b = 1, 6 do
        coroutine.spawn(function()
            local reqs = {}
            for i = 1, 16 do reqs[i] = { "GET", url .. "&b=" .. b .. "&i=" .. i, { timeout = 20 } } end
            local resps, errs = http.request_batch(reqs)
            for i = 1, 16 do
                results:send(resps and resps[i] and "ok" or kind(nil, errs and errs[i]))
            end
        end)
    end
    return tally(results, 96, "a batch")
end"#;
    let url = server.url(&format!("/big?{}", 3 * MIB));
    let (out, grown) = alone(|| {
        peak_growth(|| {
            attack(
                with_attacker(source, local_grants()),
                "h:attacker",
                vec![Value::str(url.as_str())],
            )
        })
    });
    out.assert_neighbour_ticks();
    let got = out.value();
    for part in got.split(' ') {
        let (k, _) = part.split_once('=').expect("kind=count");
        assert!(["ok", "Invalid", "RateLimited"].contains(&k), "{got}");
    }
    assert!(got.contains("ok="), "some bodies fit: {got}");
    assert!(
        grown < RSS_BOUND,
        "the runtime grew by {} MiB for a process of 8 MiB ({got})",
        grown >> 20
    );
}

#[test]
fn a_request_in_flight_holds_its_body_against_the_processs_next_requests() {
    // A 5 MiB body announced and held (its bytes come 1.5 s later): a
    // second 5 MiB request would make the host hold 10 MiB for a process
    // of 8 MiB and is refused at once, retryable; once the first is
    // delivered, the room is back. A body never announced counts as it
    // is read.
    let server = Server::start();
    let source = r#"
return function(base)
    local five = 5 * 1024 * 1024
    local results = channel.new(4)
    coroutine.spawn(function()
        local r, err = http.get(base .. "/big-slow?" .. five, { timeout = 20 })
        results:send(r and tostring(#r.body) or res(nil, err))
    end)
    time.sleep("400ms")
    local out = {}
    out[#out + 1] = res(http.get(base .. "/big?" .. five))
    out[#out + 1] = res(http.get(base .. "/big-unannounced?" .. five, { timeout = 20 }))
    out[#out + 1] = results:receive()
    local r = http.get(base .. "/big?" .. five)
    out[#out + 1] = r and tostring(#r.body) or "refused"
    return table.concat(out, " | ")
end"#;
    let out = attack(
        with_attacker(source, local_grants()),
        "h:attacker",
        vec![Value::str(server.url(""))],
    );
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r.len(), 4, "{r:?}");
    for refused in &r[..2] {
        assert!(refused.starts_with("RateLimited/true: "), "{r:?}");
        assert!(refused.contains(PER_PROCESS), "{refused}");
    }
    assert_eq!(r[2..], ["5242880", "5242880"], "{r:?}");
}

/// Holds a 6 MiB body of `/big-slow` for 1.5 s, then reports its size.
const HOLDER: &str = r#"
local http = require("http_client")
return function(parent, url)
    local r, err = http.get(url, { timeout = 20 })
    process.send(parent, "held", r and #r.body or tostring(err))
end"#;

#[test]
fn bodies_in_flight_count_against_the_hosts_memory_total() {
    // memory_total 12 MiB: another process of the host holds a 6 MiB body
    // in flight, so the attacker's 6 MiB body (within its own 8 MiB) does
    // not fit in what is left of its host's memory: RATE_LIMITED naming
    // memory_total. A small body still goes through.
    let server = Server::start();
    let source = r#"
return function(base)
    local out = {}
    out[#out + 1] = res(http.get(base .. "/big?1000"))
    process.spawn("h:holder", "test:host", process.pid(), base .. "/big-slow?" .. (6 * 1024 * 1024))
    time.sleep("400ms")
    out[#out + 1] = res(http.get(base .. "/big?" .. (6 * 1024 * 1024)))
    out[#out + 1] = res(http.get(base .. "/big?1000"))
    out[#out + 1] = tostring(process.inbox():receive():payload():data())
    return table.concat(out, " | ")
end"#;
    let mut l = limits();
    l.memory_total = 12 << 20;
    let a =
        with_attacker(source, local_grants())
            .limits(l)
            .granted("h:holder", HOLDER, local_grants());
    let out = attack(a, "h:attacker", vec![Value::str(server.url(""))]);
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(r[0], "ok");
    assert!(r[1].starts_with("RateLimited/true: "), "{r:?}");
    assert!(r[1].contains("memory_total (12582912 bytes)"), "{}", r[1]);
    assert_eq!(r[2..], ["ok", "6291456"], "{r:?}");
}

#[test]
fn a_delivered_body_gives_its_room_back() {
    // A finished body stays counted (against the process's 8 MiB and the
    // host's memory_total, 24 MiB: room for the process's heap, garbage
    // bodies included, and one more body) until the process has it, then
    // the count goes: one request's body and a batch's bodies, each 6 MiB
    // in all, six times over, all fit. A count kept past delivery refuses
    // the second of them with RATE_LIMITED.
    let server = Server::start();
    let source = r#"
return function(base)
    local six = base .. "/big?" .. (6 * 1024 * 1024)
    local three = base .. "/big?" .. (3 * 1024 * 1024)
    local out = {}
    for _ = 1, 6 do
        local r, err = http.get(six)
        out[#out + 1] = r and tostring(#r.body) or res(r, err)
        r = nil
        local b, errs = http.request_batch({ { "GET", three }, { "GET", three } })
        local e = errs and (errs[1] or errs[2])
        out[#out + 1] = e and res(nil, e) or (#b[1].body + #b[2].body)
        b = nil
    end
    return table.concat(out, " | ")
end"#;
    let mut l = limits();
    l.memory_total = 24 << 20;
    let a = with_attacker(source, local_grants()).limits(l);
    let out = attack(a, "h:attacker", vec![Value::str(server.url(""))]);
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r, vec!["6291456"; 12], "{r:?}");
}

// ---------------------------------------------------------------------------
// 2. The grant before the copy
// ---------------------------------------------------------------------------

#[test]
fn an_ungranted_request_is_denied_whatever_it_carries() {
    // Each call names a 3 MiB string three times (9 MiB to copy, past the
    // 8 MiB the process may hold): the old code copied and refused it as too
    // large (INVALID); ungranted, it is PERMISSION_DENIED before any copy.
    // A granted one is still refused as too large.
    let server = Server::start();
    let source = r#"
return function(base)
    local mib = string.rep("x", 1024 * 1024)
    local big = mib .. mib .. mib
    mib = nil
    local out = {}
    local away = "http://example.com/upload"
    local two = { ["X-A"] = big, ["X-B"] = big }
    out[#out + 1] = res(http.post(away, { body = big, headers = two }))
    out[#out + 1] = res(http.request("PUT", away, { form = { a = big, b = big, c = big } }))
    out[#out + 1] = res(http.post(away, { files = { { name = "a", content = big }, { name = "b", content = big },
        { name = "c", content = big } } }))
    out[#out + 1] = res(http.post("http://127.0.0.2:1/", { body = big, query = { q = big, r = big } }))
    out[#out + 1] = res(http.request_batch({ { "GET", base .. "/json" },
        { "POST", away, { body = big, headers = two } } }))
    out[#out + 1] = res(http.request_batch({ { "POST", base .. "/echo", { body = big, headers = { ["X-A"] = big } } },
        { "POST", away, { body = big } } }))
    out[#out + 1] = res(http.post(base .. "/echo", { body = big, headers = two }))
    return table.concat(out, " | ")
end"#;
    let out = attack(
        with_attacker(source, local_grants()),
        "h:attacker",
        vec![Value::str(server.url(""))],
    );
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r.len(), 7, "{r:?}");
    for denied in &r[..4] {
        assert!(
            denied.starts_with("PermissionDenied/false: http_client.request not granted for "),
            "{r:?}"
        );
    }
    for denied in &r[4..6] {
        assert!(
            denied.starts_with(
                "PermissionDenied/false: request_batch: request 2: http_client.request not granted"
            ),
            "{r:?}"
        );
    }
    assert!(r[6].starts_with("Invalid/false: "), "{r:?}");
    assert!(r[6].contains("more than 8388608 bytes"), "{}", r[6]);
    assert_eq!(server.connections(), 0, "nothing was sent");
}

#[test]
fn an_ungranted_request_is_denied_whatever_the_process_has_in_flight() {
    // The process has all 8 of its operations in flight, each holding a
    // 1 MiB copy (8 MiB, all it may hold): a granted call is RATE_LIMITED,
    // an ungranted one, with options or without, from one coroutine or
    // ten at once, is PERMISSION_DENIED and takes no slot.
    let server = Server::start();
    let source = r#"
return function(base)
    local mib = string.rep("x", 1024 * 1024 - 64)
    local results = channel.new(32)
    for i = 1, 8 do
        coroutine.spawn(function()
            local _, err = http.get(base .. "/never", { headers = { ["X-Pad"] = mib }, timeout = 1.5 })
            results:send(kind(nil, err))
        end)
    end
    time.sleep("100ms")
    local out = {}
    out[#out + 1] = kind(http.get(base .. "/json"))
    out[#out + 1] = res(http.get("http://example.com/"))
    out[#out + 1] = res(http.post("http://example.com/", { body = mib }))
    out[#out + 1] = res(http.request_batch({ { "GET", "http://example.com/" } }))
    local denied = channel.new(16)
    for i = 1, 10 do
        coroutine.spawn(function() denied:send(kind(http.get("http://example.com/" .. i))) end)
    end
    out[#out + 1] = tally(denied, 10, "an ungranted request")
    out[#out + 1] = tally(results, 8, "a request to the silent server")
    return table.concat(out, " | ")
end"#;
    let out = attack(
        with_attacker(source, local_grants()),
        "h:attacker",
        vec![Value::str(server.url(""))],
    );
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r.len(), 6, "{r:?}");
    assert_eq!(r[0], "RateLimited", "{r:?}");
    for denied in &r[1..4] {
        assert!(denied.starts_with("PermissionDenied/false: "), "{r:?}");
        assert!(denied.contains("http://example.com/"), "{denied}");
    }
    assert_eq!(r[4..], ["PermissionDenied=10", "Timeout=8"], "{r:?}");
}

/// Volumes `app.fs:data`, `app.fs:secret` and the read-only `app.fs:ro`
/// in `dir`.
fn volumes(dir: &TempDir) -> Arc<Volumes> {
    let mut v = Volumes::new();
    for (name, mode) in [("data", 0o755), ("secret", 0o755), ("ro", 0o555)] {
        let vol = warren_fs::Volume::open(&format!("app.fs:{name}"), &dir.0.join(name), mode, true)
            .expect("volume");
        v.insert(vol);
    }
    Arc::new(v)
}

#[test]
fn an_fs_write_is_denied_before_its_data_is_copied() {
    // A volume handle whose `_id` names an ungranted volume and a forged
    // file handle, given 9 MiB to copy (a 3 MiB string as path, data and
    // mode or working directory), and those and a read-only volume given
    // 3 MiB while 6 MiB of copies are in flight: refused for what they
    // are, not as too large or rate limited; nothing is written.
    let dir = TempDir::new("http-budget-fs");
    let server = Server::start();
    let source = r#"
return function(base)
    local mib = string.rep("x", 1024 * 1024)
    local big = mib .. mib .. mib
    mib = nil
    local out = {}
    local vol = assert(fs.get("app.fs:data"))
    local ro = assert(fs.get("app.fs:ro"))
    local f = assert(vol:open("f.txt", "w"))
    local forged = assert(fs.get("app.fs:data"))
    rawset(forged, "_id", "app.fs:secret")
    out[#out + 1] = res(forged:writefile(big, big, big))
    rawset(forged, "_cwd", big)
    out[#out + 1] = res(forged:writefile(big, big))
    rawset(forged, "_cwd", "/")
    rawset(f, "_h", 424242)
    out[#out + 1] = res(f:write(big))
    big = nil
    -- 6 MiB of copies in flight: a granted write of 3 MiB would pass 8 MiB.
    local three = string.rep("y", 3 * 1024 * 1024)
    local results = channel.new(4)
    for i = 1, 2 do
        coroutine.spawn(function()
            local _, err = http.get(base .. "/never", { headers = { ["X-Pad"] = three }, timeout = 1 })
            results:send(kind(nil, err))
        end)
    end
    time.sleep("100ms")
    out[#out + 1] = res(forged:writefile("b.txt", three))
    out[#out + 1] = res(ro:writefile("b.txt", three))
    out[#out + 1] = res(f:write(three))
    out[#out + 1] = res(vol:writefile("b.txt", three))
    out[#out + 1] = tally(results, 2, "a request to the silent server")
    return table.concat(out, " | ")
end"#;
    let a = with_attacker(source, all_grants()).extension(volumes(&dir));
    let out = attack(a, "h:attacker", vec![Value::str(server.url(""))]);
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r.len(), 8, "{r:?}");
    let secret = "PermissionDenied/false: fs.get on 'app.fs:secret' is not granted";
    let ro = "PermissionDenied/false: writefile on volume 'app.fs:ro' is not allowed";
    let closed = "Internal/false: file is closed";
    for (got, want) in r.iter().zip([secret, secret, closed, secret, ro, closed]) {
        assert!(got.starts_with(want), "{want:?} expected: {r:?}");
    }
    assert!(r[6].starts_with("RateLimited/true: fs: "), "{r:?}");
    assert_eq!(r[7], "Timeout=2");
    for name in ["secret", "ro"] {
        let files = std::fs::read_dir(dir.0.join(name)).expect("dir").count();
        assert_eq!(files, 0, "something was written to app.fs:{name}");
    }
}

#[test]
fn a_query_past_the_url_bound_is_refused_before_any_thread_encodes_it() {
    // (1 MiB here, within the process's 8 MiB.) An 8 MiB query was encoded and parsed on the two shared I/O threads
    // (148 ms each, its caller charged 2 ms): a tenant looping on it held
    // another tenant's requests for seconds (red team R). Refused now on
    // the caller's worker, at once, naming the bound; a form is encoded
    // there too, and reaches the server as before.
    let server = Server::start();
    let source = r#"
return function(url)
    local _, err = http.get(url, { query = { q = string.rep("\0", 1 << 20) } })
    local sent = assert(http.post(url, { form = { ["a b"] = "c&d" } }))
    local typed = sent.body:lower():find("content-type=application/x-www-form-urlencoded", 1, true)
    return tostring(err and err:kind()) .. " | " .. tostring(err and err:message())
        .. " | " .. tostring(sent.status_code) .. " | " .. tostring(typed ~= nil)
        .. " | " .. sent.body:match("[^\n]*$")
end"#;
    let args = vec![Value::str(server.url("/echo"))];
    let out = attack(with_attacker(source, local_grants()), "h:attacker", args);
    out.assert_neighbour_ticks();
    let r = parts(&out);
    assert_eq!(r[0], "Invalid", "{r:?}");
    assert!(r[1].contains("more than 65536"), "{r:?}");
    assert_eq!(r[2..], ["200", "true", "a+b=c%26d"], "{r:?}");
}
