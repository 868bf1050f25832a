//! `http_client` through real processes against a real server on
//! 127.0.0.1: every call, response fields, grants (destination and private
//! address), timeouts, body limits, streams, batches, and that a waiting
//! request leaves the worker to other processes.

use warren_core::Value;
use warren_tests::*;

use super::grants;
use super::server::Server;

/// Grants reaching the test server (loopback needs its own grant).
fn local_grants() -> warren_core::Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

fn run_http(source: &str, g: warren_core::Grants, url: &str) -> Value {
    let exit = App::new()
        .granted("t:main", source, g)
        .run("t:main", vec![Value::str(url)]);
    match exit {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn get_post_and_the_response_fields() {
    let server = Server::start();
    let v = run_http(
        r#"local http = require("http_client")
    local json = require("json")
    return function(base)
        local r = assert(http.get(base .. "/json", { headers = { ["X-Test"] = "1" } }))
        assert(r.status_code == 200, r.status_code)
        assert(r.headers["Content-Type"] == "application/json")
        assert(r.headers["content-type"] == "application/json", "lookups ignore case")
        assert(r.cookies.session == "abc", "cookies")
        assert(json.decode(r.body).n == 42 and r.body_size == #r.body)
        assert(r.url == base .. "/json")
        local e = assert(http.post(base .. "/echo", { body = "payload", query = { q = "a b" },
            headers = { ["Content-Type"] = "text/plain" } }))
        assert(e.body:find("^POST /echo q=a[+%%]"), e.body)
        assert(e.body:find("payload$"), e.body)
        local f = assert(http.request("PUT", base .. "/echo", { form = { k = "v" } }))
        assert(f.body:find("k=v"), f.body)
        local a = assert(http.get(base .. "/echo", { auth = { user = "u", pass = "p" }, cookies = { c = "1" } }))
        assert(a.body:find("authorization=Basic dTpw"), a.body)
        assert(a.body:find("cookie=c=1"), a.body)
        local s = assert(http.get(base .. "/status/500"))
        assert(s.status_code == 500 and s.body == "boom", "a status is a response")
        local rd = assert(http.get(base .. "/redirect"))
        assert(rd.status_code == 200 and rd.url == base .. "/json", rd.url)
        local h = assert(http.head(base .. "/json"))
        assert(h.body == nil)
        assert(http.encode_uri("a b&c") == "a+b%26c")
        assert(http.decode_uri("a+b%26c") == "a b&c")
        local _, bad = http.decode_uri("%zz")
        return bad:kind()
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(v, s("Invalid"));
}

#[test]
fn ungranted_destinations_open_no_connection() {
    let server = Server::start();
    let source = r#"local http = require("http_client")
    return function(base)
        local out = {}
        for _, url in ipairs({ base .. "/json", "http://169.254.169.254/latest/meta-data",
                               "http://localhost:" .. base:match(":(%d+)$") .. "/json" }) do
            local r, err = http.get(url)
            out[#out + 1] = r and "ok" or err:kind()
        end
        local _, redirect_err = http.get(base .. "/redirect-out")
        out[#out + 1] = redirect_err and redirect_err:kind() or "followed"
        return table.concat(out, " ")
    end"#;
    // Destination granted, loopback not: refused at the dialled address.
    let only_dest = grants(&[("http_client.request", "http://127.0.0.1:*")]);
    let v = run_http(source, only_dest, &server.url(""));
    assert_eq!(
        v,
        s("PermissionDenied PermissionDenied PermissionDenied PermissionDenied")
    );
    assert_eq!(server.connections(), 0, "nothing reached the server");
    // No grants at all.
    let v = run_http(source, warren_core::Grants::new(), &server.url(""));
    assert_eq!(
        v,
        s("PermissionDenied PermissionDenied PermissionDenied PermissionDenied")
    );
    assert_eq!(server.connections(), 0);
    // With both grants the redirect's hop to an ungranted host is refused.
    let v = run_http(source, local_grants(), &server.url(""));
    assert_eq!(
        v,
        s("ok PermissionDenied PermissionDenied PermissionDenied")
    );
}

#[test]
fn timeouts_limits_and_bad_options() {
    let server = Server::start();
    let v = run_http(
        r#"local http = require("http_client")
    local time = require("time")
    return function(base)
        local out = {}
        local function k(r, err) out[#out + 1] = r and tostring(r.status_code) or err:kind() end
        local t0 = time.now()
        k(http.get(base .. "/never", { timeout = 0.2 }))
        k(http.get(base .. "/slow", { timeout = "100ms" }))
        assert(time.now():sub(t0):seconds() < 2, "timeouts cut the wait")
        k(http.get(base .. "/endless", { max_response_body = 100000 }))
        k(http.get(base .. "/json", { body = "x", form = { a = "b" } }))
        k(http.get(base .. "/json", { overlay_network = "x" }))
        k(http.get(base .. "/json", { timeout = {} }))
        k(http.get("not a url"))
        k(http.request("BAD METHOD", base .. "/json"))
        k(http.get(base .. "/json"))
        return table.concat(out, " ")
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(
        v,
        s("Timeout Timeout Invalid Invalid Invalid Invalid Invalid Invalid 200")
    );
}

#[test]
fn streams_and_batches() {
    let server = Server::start();
    let v = run_http(
        r#"local http = require("http_client")
    return function(base)
        local r = assert(http.get(base .. "/lines", { stream = true }))
        assert(r.body == nil and r.body_size == -1)
        local sc = r.stream:scanner()
        local lines = {}
        while sc:scan() do lines[#lines + 1] = sc:text() end
        assert(sc:err() == nil)
        r.stream:close()
        local r2 = assert(http.get(base .. "/json", { stream = true }))
        -- A size that is no non-negative integer is refused, and reads nothing.
        for _, bad in ipairs({ -1, math.mininteger, 1.5, "4" }) do
            local none, e = r2.stream:read(bad)
            assert(none == nil and e:kind() == "Invalid" and e:message():find("non-negative integer", 1, true), tostring(bad))
        end
        local all = {}
        while true do
            local chunk, err = r2.stream:read(4)
            assert(err == nil, tostring(err))
            if not chunk then break end
            all[#all + 1] = chunk
        end
        assert(table.concat(all) == '{"ok":true,"n":42}')
        local resps, errs = http.request_batch({ { "GET", base .. "/json" }, { "GET", base .. "/never", { timeout = 0.2 } } })
        assert(resps[1].status_code == 200 and resps[2] == nil)
        assert(errs[2]:kind() == "Timeout")
        local ok_all, none = http.request_batch({ { "GET", base .. "/json" }, { "POST", base .. "/echo", { body = "b" } } })
        assert(none == nil and ok_all[2].status_code == 200)
        local nothing, refused = http.request_batch({ { "GET", base .. "/json" }, { "GET", "http://example.com/" } })
        assert(nothing == nil and refused:kind() == "PermissionDenied")
        local _, empty = http.request_batch({})
        return table.concat(lines, ",") .. " " .. empty:kind()
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(v, s("one,two,three Invalid"));
}

#[test]
fn a_request_waiting_on_a_silent_server_holds_only_its_coroutine() {
    let server = Server::start();
    let v = run_http(
        r#"local http = require("http_client")
    local time = require("time")
    return function(base)
        local ticks, done = 0, false
        coroutine.spawn(function()
            while not done do
                time.sleep("2ms")
                ticks = ticks + 1
            end
        end)
        local _, err = http.get(base .. "/never", { timeout = 0.3 })
        done = true
        return err:kind() .. " " .. tostring(ticks > 10)
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(v, s("Timeout true"));
}

#[test]
fn files_methods_and_grants_for_sockets_and_insecure_tls() {
    let server = Server::start();
    let v = run_http(
        r#"local http = require("http_client")
    return function(base)
        local out = {}
        local m = assert(http.post(base .. "/echo", { form = { who = "lua" },
            files = { { name = "doc", filename = "a.txt", content = "file body", content_type = "text/plain" } } }))
        assert(m.body:find("content-type=multipart/form-data", 1, true), m.body)
        assert(m.body:find('filename="a.txt"', 1, true) and m.body:find("file body", 1, true), m.body)
        assert(m.body:find('name="who"', 1, true), m.body)
        out[#out + 1] = assert(http.patch(base .. "/echo", { body = "p" })).body:match("^%u+")
        out[#out + 1] = assert(http.delete(base .. "/echo")).body:match("^%u+")
        out[#out + 1] = assert(http.put(base .. "/echo", { body = "x" })).body:match("^%u+")
        local _, sock = http.get(base .. "/json", { unix_socket = "/tmp/warren-no-such.sock" })
        out[#out + 1] = sock:kind()
        local _, tls = http.get(base .. "/json", { tls = { insecure_skip_verify = true } })
        out[#out + 1] = tls:kind()
        local _, reader = http.post(base .. "/echo", { files = { { name = "f", reader = {} } } })
        out[#out + 1] = reader:kind()
        return table.concat(out, " ")
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(
        v,
        s("PATCH DELETE PUT PermissionDenied PermissionDenied Invalid")
    );
}

/// [`run_http`] on a host whose processes may hold 8 MiB.
fn run_small(source: &str, g: warren_core::Grants, url: &str) -> Value {
    let limits = warren_core::HostLimits {
        memory_per_process: 8 << 20,
        ..warren_core::HostLimits::default()
    };
    let exit = App::new()
        .limits(limits)
        .granted("t:main", source, g)
        .run("t:main", vec![Value::str(url)]);
    match exit {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn response_bodies_in_flight_count_against_what_the_process_may_hold() {
    // A 5 MiB body announced and held while its bytes are on their way
    // leaves 3 MiB of the process's 8: a second one is refused at once,
    // retryable; once the first is delivered the room is back. In a batch
    // the bodies share the room in list order, the late first member's
    // included; the one past it is INVALID with details().limit.
    let server = Server::start();
    let v = run_small(
        r#"local http = require("http_client")
    local time = require("time")
    return function(base)
        local five = 5 * 1024 * 1024
        local out = {}
        local done = channel.new(1)
        coroutine.spawn(function()
            local r = http.get(base .. "/big-slow?" .. five, { timeout = 20 })
            done:send(r and #r.body or -1)
        end)
        time.sleep("300ms")
        local _, err = http.get(base .. "/big?" .. five)
        out[#out + 1] = err:kind() .. "/" .. tostring(err:retryable())
        out[#out + 1] = tostring(done:receive())
        local three = 3 * 1024 * 1024
        local resps, errs = http.request_batch({ { "GET", base .. "/big-late?" .. three },
            { "GET", base .. "/big?" .. three .. "&a" }, { "GET", base .. "/big?" .. three .. "&b" } })
        out[#out + 1] = tostring(#resps[1].body) .. "," .. tostring(#resps[2].body) .. ","
            .. errs[3]:kind() .. "," .. tostring(errs[3]:details().limit)
        return table.concat(out, " ")
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(
        v,
        s("RateLimited/true 5242880 3145728,3145728,Invalid,8388608")
    );
}

#[test]
fn an_ungranted_request_is_refused_before_its_options_are_copied() {
    // 9 MiB of options for a process of 8 MiB: granted, the copy is refused
    // as too large; not granted, the grant is what refuses it.
    let server = Server::start();
    let v = run_small(
        r#"local http = require("http_client")
    return function(base)
        local mib = string.rep("x", 1024 * 1024)
        local big = mib .. mib .. mib
        mib = nil
        local opts = { body = big, headers = { ["X-A"] = big, ["X-B"] = big } }
        local out = {}
        for _, url in ipairs({ "http://example.com/", base .. "/echo" }) do
            local _, err = http.post(url, opts)
            out[#out + 1] = err:kind()
        end
        local _, err = http.request_batch({ { "GET", base .. "/json" }, { "POST", "http://example.com/", opts } })
        out[#out + 1] = err:kind()
        return table.concat(out, " ")
    end"#,
        local_grants(),
        &server.url(""),
    );
    assert_eq!(v, s("PermissionDenied Invalid PermissionDenied"));
    assert_eq!(server.connections(), 0);
}
