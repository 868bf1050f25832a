//! Capability forging: a process rewrites the id fields of the objects it
//! holds (`rawset`: their metatables are locked, their fields are not) to
//! act on a resource that is not its own: another process's open file,
//! transaction, statement or stream, a handle it closed, a handle of
//! another kind, ids at the integer limits; and it tries the objects kept
//! by identity in kernel tables (timers, executors, futures) with plain
//! tables and copies.
//!
//! Guaranteed (hostcall.rs, io/mod.rs `take_if`): a handle id names a
//! slot in the caller's own handle table only (the host looks it up under
//! the caller's pid, never under an id the process supplies); ids are
//! never reused within a process (a closed id stays dead); a call aimed at
//! a handle of another kind leaves it alone; timers, executors and futures
//! are found by the identity of the kernel-made table, so no forged table
//! names one, and a copy (a message) arrives as a plain table or is
//! refused. Each case asserts the refusal and that the victim's resource
//! is untouched, and that the neighbour kept ticking.
//!
//! Three were holes until fixed (each fails on the code before): a `_h`
//! that is not an integer raised mlua's conversion error (files,
//! statements, streams, `tx:commit`; now it is no handle's, refused as a
//! closed one); and `vol:writefile(p, file)` opened (truncated) `p`
//! before it found its source closed or forged, and leaked that handle
//! when the source's `_h` made the read raise. Nothing of another process
//! was reached in either. A forged file id is refused as `INTERNAL` "file
//! is closed" (modules.md: use of a closed file), where sql and http say
//! `INVALID`.

use std::path::PathBuf;
use std::sync::Arc;

use warren_core::{Grants, Value};
use warren_lua::Volumes;
use warren_tests::{TempDir, grants};

use crate::harness::{Outcome, app, attack_on, sqlite_dbs};

// The same server as io_surface's (whose module is private to it); this
// file uses only its `/lines` stream.
#[expect(
    dead_code,
    clippy::duplicate_mod,
    reason = "io_surface keeps its copy private"
)]
#[path = "../tests/io/server.rs"]
mod server;
use server::Server;

/// A volume root, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "warren-hostile-forged-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("root");
        Dir(dir)
    }

    fn volumes(&self) -> Arc<Volumes> {
        let mut v = Volumes::new();
        let vol = warren_fs::Volume::open("app.fs:data", &self.0, 0o755, false).expect("volume");
        v.insert(vol);
        Arc::new(v)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_else(|e| format!("<{e}>"))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fs_grant() -> Grants {
    grants(&[("fs.get", "app.fs:data")])
}

fn all_grants() -> Grants {
    grants(&[
        ("fs.get", "app.fs:data"),
        ("db.get", "app.db:*"),
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// Prepended to every script: modules, `res` (a `nil, err` result as
/// "Kind: message", anything else as "ok" or the value), `kind`, `raised`
/// (the error `f` raises, or "no error") and `ready` (a child's first
/// message).
const PRELUDE: &str = r#"
local fs = require("fs")
local sql = require("sql")
local http = require("http_client")
local time = require("time")
local function res(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) .. ": " .. tostring(err:message()) end
    if v == nil then return "nil" end
    return "ok"
end
local function kind(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) end
    if v == nil then return "nil" end
    return "ok"
end
local function raised(f, ...)
    local ok, e = pcall(f, ...)
    if ok then return "no error" end
    if type(e) == "table" and e.message then return "raised " .. tostring(e:kind()) .. ": " .. tostring(e:message()) end
    return "raised " .. (tostring(e):match("^[^\n]*"))
end
-- `f(...)` as `res` would show its result, or "raised <first line>".
local function try(f, ...)
    local r = table.pack(pcall(f, ...))
    if not r[1] then return "raised " .. (tostring(r[2]):match("^[^\n]*")) end
    return res(r[2], r[3])
end
local function ready()
    local r = channel.select({ process.inbox():case_receive(), process.events():case_receive(),
        time.after("10s"):case_receive() })
    if r.channel == process.inbox() then return r.value:payload():data() end
    if r.value and r.value.result then error("child ended first: " .. tostring(r.value.result.error)) end
    error("child never got ready")
end
"#;

fn src(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

/// Splits a " | "-joined result.
fn parts(out: &Outcome) -> Vec<String> {
    out.assert_neighbour_ticks();
    out.value().split(" | ").map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// fs files
// ---------------------------------------------------------------------------

/// The thief: gets the victim's file id (and a copy of its file object),
/// and aims every file call at it and at the ids around it, first through
/// a closed file of its own (it holds no handle), then through an open
/// one (whatever its own ids name is its own file).
const FILE_THIEF: &str = r#"
return function(parent, vid, copy)
    local out = {}
    local function add(s) out[#out + 1] = s end
    -- 1: the copy is a plain table without methods
    add(tostring(getmetatable(copy) == nil and copy.read == nil and copy._h == vid))
    local vol = assert(fs.get("app.fs:data"))
    local mine = assert(vol:open("thief.txt", "w"))
    local FM = getmetatable(mine)
    -- 2: the copy, through the module's methods
    add(raised(mine.write, copy, "EVIL"))
    mine:close()
    -- 3: every call through its closed file aimed at the victim's id and
    -- the ids around it (it holds no handle now)
    local refused, other = 0, {}
    for id = 1, vid + 20 do
        rawset(mine, "_h", id)
        for _, r in ipairs({ res(mine:write("EVIL")), res(mine:read(4)), res(mine:seek("set", 0)),
                             res(mine:stat()), res(mine:sync()), res(mine:scanner()) }) do
            if r:find("file is closed", 1, true) then refused = refused + 1 else other[#other + 1] = id .. "=" .. r end
        end
        mine:close()
    end
    add(refused .. " " .. table.concat(other, ","))
    -- 4: an open file of its own, retargeted at the victim's id: only its
    -- own table is looked at
    local own = assert(vol:open("thief2.txt", "w"))
    local own_id = rawget(own, "_h")
    rawset(own, "_h", vid)
    add(kind(own:write("EVIL")) .. "/" .. kind(own:seek("set", 0)) .. "/" .. tostring(own:close()))
    rawset(own, "_h", own_id)
    add(kind(own:write("own")))
    own:close()
    -- 5: a volume write through a copied file as the source
    add(res(vol:writefile("stolen.txt", copy)) .. " " .. tostring(vol:exists("stolen.txt")))
    process.send(parent, "done", table.concat(out, " | "))
end"#;

/// The victim: opens `victim.txt`, writes, hands the id and the file to
/// the thief, waits for it to end, then writes on and reads its file back.
const FILE_VICTIM: &str = r#"
return function()
    local vol = assert(fs.get("app.fs:data"))
    local f = assert(vol:open("victim.txt", "w"))
    assert(f:write("victim"))
    local vid = rawget(f, "_h")
    local pid = process.spawn_monitored("h:thief", "test:host", process.pid(), vid, f)
    local report = ready()
    local ev = process.events():receive()
    assert(f:write("-more"))
    local pos = f:seek("cur", 0)
    f:close()
    return report .. " | " .. tostring(pos) .. " | " .. vol:readfile("victim.txt")
end"#;

#[test]
fn a_file_id_of_another_process_reaches_nothing_of_its_file() {
    let dir = Dir::new("file-thief");
    let a = app()
        .extension(dir.volumes())
        .granted("h:attacker", &src(FILE_VICTIM), fs_grant())
        .granted("h:thief", &src(FILE_THIEF), fs_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    assert_eq!(r.len(), 8, "{r:?}");
    assert_eq!(
        r[0], "true",
        "the file arrived with its methods or without its id"
    );
    assert!(r[1].contains("not a fs.file handle"), "{}", r[1]);
    // The victim's id is 2 (its volume check was operation 1): 22 ids × 6
    // calls, every one refused as closed in the thief's empty table.
    assert_eq!(r[2], "132 ", "a forged id reached a file");
    // The id of the victim names nothing in the thief's table. (Refused
    // as INTERNAL "file is closed", where sql says INVALID.)
    assert_eq!(r[3], "Internal/Internal/true");
    assert_eq!(r[4], "ok", "the thief's own file stopped working");
    assert!(
        r[5].starts_with("Invalid: vol:writefile: data must be a string or an open fs file"),
        "{}",
        r[5]
    );
    assert!(r[5].ends_with(" false"), "{}", r[5]);
    // The victim wrote on at its own position, and nothing else did.
    assert_eq!(r[6], "11");
    assert_eq!(r[7], "victim-more");
    assert_eq!(dir.read("victim.txt"), "victim-more");
    assert_eq!(dir.read("thief2.txt"), "own");
}

#[test]
fn a_closed_file_stays_dead_and_its_id_is_never_given_again() {
    let dir = Dir::new("file-closed");
    std::fs::write(dir.0.join("keep.txt"), "keep").expect("file");
    let source = src(r#"
return function()
    local vol = assert(fs.get("app.fs:data"))
    local out = {}
    local function add(s) out[#out + 1] = s end
    local f = assert(vol:open("a.txt", "w"))
    local old = rawget(f, "_h")
    assert(f:write("a"))
    f:close()
    -- 1: many opens after the close: none is given the closed id
    local fresh, reused = {}, 0
    for i = 1, 10 do
        local g = assert(vol:open("keep.txt", "r"))
        if rawget(g, "_h") == old then reused = reused + 1 end
        fresh[#fresh + 1] = g
    end
    add(tostring(reused))
    -- 2-7: every call on the closed file
    add(res(f:write("x")))
    add(res(f:read(1)))
    add(res(f:seek("set", 0)))
    add(res(f:stat()))
    add(res(f:sync()))
    add(res(f:scanner()))
    -- 8-9: closing it again (and again) closes none of the new ones
    add(tostring(f:close()) .. tostring(f:close()))
    local alive = 0
    for _, g in ipairs(fresh) do if g:read(4) == "keep" then alive = alive + 1 end end
    add(tostring(alive))
    -- 10: a new file's id copied into the closed one names that new file:
    -- the process's own (an id names only its own table)
    rawset(f, "_h", rawget(fresh[1], "_h"))
    add(res(f:seek("set", 1)) .. " " .. tostring(fresh[1]:read(3)))
    for _, g in ipairs(fresh) do g:close() end
    add(vol:readfile("a.txt") .. " " .. vol:readfile("keep.txt"))
    return table.concat(out, " | ")
end"#);
    let a = app()
        .extension(dir.volumes())
        .granted("h:attacker", &source, fs_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    assert_eq!(r[0], "0", "a closed file's id was given to a new file");
    for got in &r[1..6] {
        assert_eq!(got, "Internal: file is closed");
    }
    assert_eq!(r[6], "Invalid: file:scanner: the file is closed");
    assert_eq!(r[7], "truetrue");
    assert_eq!(r[8], "10", "closing a closed file closed a new one");
    assert_eq!(r[9], "ok eep");
    assert_eq!(r[10], "a keep");
}

/// Every file call through `f` (whose `_h` the script set), joined by ";".
const FILE_CALLS: &str = r#"
local function file_calls(f)
    return table.concat({ try(f.write, f, "EVIL"), try(f.read, f, 1), try(f.seek, f, "set", 0),
        try(f.stat, f), try(f.sync, f), try(f.scanner, f), try(f.close, f) }, ";")
end
"#;

#[test]
fn file_ids_at_the_integer_limits_reach_nothing() {
    let dir = Dir::new("file-limits");
    let source = src(&format!(
        "{FILE_CALLS}{}",
        r#"
return function()
    local vol = assert(fs.get("app.fs:data"))
    local f = assert(vol:open("f.txt", "w"))
    assert(f:write("data"))
    local real = rawget(f, "_h")
    local out = {}
    -- integers, and floats with an integer value (converted to it)
    for _, id in ipairs({ math.maxinteger, math.mininteger, 0, -1, -real, real + (1 << 32), real - (1 << 32),
                          real + (1 << 62), 2^53, -2^63, real + 1, real + 100 }) do
        rawset(f, "_h", id)
        out[#out + 1] = file_calls(f)
    end
    -- the id itself as a float and as a string: no handle
    rawset(f, "_h", real + 0.0)
    out[#out + 1] = res(f:seek("end", 0))
    rawset(f, "_h", tostring(real))
    out[#out + 1] = res(f:seek("end", 0))
    rawset(f, "_h", real)
    out[#out + 1] = res(f:write("-end"))
    f:close()
    out[#out + 1] = vol:readfile("f.txt")
    return table.concat(out, " | ")
end"#
    ));
    let a = app()
        .extension(dir.volumes())
        .granted("h:attacker", &source, fs_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    assert_eq!(r.len(), 16, "{r:?}");
    let closed = "Internal: file is closed";
    let want = format!(
        "{closed};{closed};{closed};{closed};{closed};Invalid: file:scanner: the file is closed;ok"
    );
    for got in &r[..12] {
        assert_eq!(*got, want);
    }
    // An id that is not an integer is no handle's, not even one whose
    // value converts to the file's own (a float, a string).
    assert_eq!(&r[12..], [closed, closed, "ok", "data-end"]);
    assert_eq!(dir.read("f.txt"), "data-end");
}

#[test]
fn handle_ids_that_are_not_integers_are_refused_as_invalid_not_raised() {
    let dir = Dir::new("file-nonint");
    let tmp = TempDir::new("forged-nonint");
    let server = Server::start();
    let source = src(&format!(
        "{FILE_CALLS}{}",
        r#"
return function(base)
    local vol = assert(fs.get("app.fs:data"))
    local db = assert(sql.get("app.db:main"))
    local out = {}
    for _, id in ipairs({ 2^63, -2^64, 2.5, 0/0, 1/0, "x", {}, true, false }) do
        local f = assert(vol:open("f.txt", "w"))
        local tx = assert(db:begin())
        local st = assert(tx:prepare("SELECT 1"))
        local r = assert(http.get(base .. "/lines", { stream = true }))
        local real = { rawget(f, "_h"), rawget(tx, "_h"), rawget(st, "_h"), rawget(r.stream, "_h") }
        rawset(f, "_h", id)
        rawset(tx, "_h", id)
        rawset(st, "_h", id)
        rawset(r.stream, "_h", id)
        out[#out + 1] = table.concat({ file_calls(f), try(tx.query, tx, "SELECT 1"), try(tx.commit, tx),
            try(st.query, st), try(r.stream.read, r.stream, 1) }, ";")
        rawset(f, "_h", real[1]); f:close()
        rawset(st, "_h", real[3]); st:close()
        rawset(tx, "_h", real[2]); assert(tx:rollback())
        rawset(r.stream, "_h", real[4]); r.stream:close()
    end
    return table.concat(out, " | ")
end"#
    ));
    let a = app()
        .extension(dir.volumes())
        .databases(sqlite_dbs(&tmp, &["main"]))
        .granted("h:attacker", &source, all_grants());
    let out = attack_on(&a.start(), "h:attacker", vec![Value::str(server.url(""))]);
    for got in parts(&out) {
        for call in got.split(';') {
            // A close answers true whatever it names; a file's calls answer
            // as for a closed file (INTERNAL, modules.md), the others INVALID.
            assert!(
                call == "ok" || call.starts_with("Invalid: ") || call == "Internal: file is closed",
                "{call} in {got}"
            );
        }
    }
}

#[test]
fn writefile_from_a_closed_source_is_refused_before_the_destination_is_touched() {
    let dir = Dir::new("copyclosed");
    std::fs::write(dir.0.join("dest.txt"), "precious").expect("file");
    std::fs::write(dir.0.join("src.txt"), "source").expect("file");
    let source = src(r#"
return function()
    local vol = assert(fs.get("app.fs:data"))
    local s = assert(vol:open("src.txt", "r"))
    s:close()
    -- 1: a closed file as the source
    local out = { try(vol.writefile, vol, "dest.txt", s) }
    -- 2: a source retargeted at an id the process does not hold
    rawset(s, "_h", 999)
    out[#out + 1] = try(vol.writefile, vol, "dest.txt", s)
    return table.concat(out, " | ")
end"#);
    let a = app()
        .extension(dir.volumes())
        .granted("h:attacker", &source, fs_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    for got in &r {
        assert!(got.contains("closed"), "{got}");
    }
    assert_eq!(
        dir.read("dest.txt"),
        "precious",
        "a copy from a closed file truncated its destination"
    );
}

#[test]
fn writefile_from_an_altered_source_leaks_no_handle_and_keeps_the_destination() {
    let dir = Dir::new("copyfile");
    std::fs::write(dir.0.join("dest.txt"), "precious").expect("file");
    std::fs::write(dir.0.join("src.txt"), "source").expect("file");
    let source = src(r#"
return function()
    local vol = assert(fs.get("app.fs:data"))
    local out = {}
    local s = assert(vol:open("src.txt", "r"))
    rawset(s, "_h", {})
    -- 1: refused, not raised
    out[#out + 1] = try(vol.writefile, vol, "dest.txt", s)
    for i = 1, 20 do pcall(vol.writefile, vol, "dest.txt", s) end
    -- 2: the process still holds only its source file: it may open 15 more
    local held, err = {}, nil
    for i = 1, 15 do
        local f, e = vol:open("src.txt", "r")
        if not f then err = e break end
        held[#held + 1] = f
    end
    out[#out + 1] = #held .. " " .. res(nil, err)
    return table.concat(out, " | ")
end"#);
    let a = app()
        .extension(dir.volumes())
        .granted("h:attacker", &source, fs_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    assert_eq!(
        r[1], "15 nil",
        "leaked handles count against max_open_handles"
    );
    assert_eq!(
        dir.read("dest.txt"),
        "precious",
        "a copy refused for its source truncated the destination"
    );
    assert!(r[0].starts_with("Invalid: "), "{}", r[0]);
}

// ---------------------------------------------------------------------------
// Ids across kinds and at the limits: files, transactions, statements,
// streams
// ---------------------------------------------------------------------------

#[test]
fn ids_do_not_cross_between_files_and_sql_and_stream_handles() {
    let dir = Dir::new("kinds");
    let tmp = TempDir::new("forged-kinds");
    let server = Server::start();
    let source = src(&format!(
        "{FILE_CALLS}{}",
        r#"
return function(base)
    local vol = assert(fs.get("app.fs:data"))
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local f = assert(vol:open("f.txt", "w"))
    assert(f:write("file"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES (1)"))
    local st = assert(tx:prepare("SELECT count(*) AS n FROM t"))
    local r = assert(http.get(base .. "/lines", { stream = true }))
    local ids = { f = rawget(f, "_h"), tx = rawget(tx, "_h"), st = rawget(st, "_h"), stream = rawget(r.stream, "_h") }
    local out = {}
    -- 1-3: a closed file of the process's own aimed at the transaction,
    -- the statement and the stream
    local g = assert(vol:open("g.txt", "w"))
    g:close()
    for _, k in ipairs({ "tx", "st", "stream" }) do
        rawset(g, "_h", ids[k])
        out[#out + 1] = file_calls(g)
    end
    -- 4: a closed statement, a closed stream and a committed
    -- transaction aimed at the open file
    local tx2 = assert(assert(sql.get("app.db:other")):begin())
    local st2 = assert(tx2:prepare("SELECT 1"))
    st2:close()
    assert(tx2:commit())
    local r2 = assert(http.get(base .. "/lines", { stream = true }))
    r2.stream:close()
    rawset(st2, "_h", ids.f)
    rawset(tx2, "_h", ids.f)
    rawset(r2.stream, "_h", ids.f)
    out[#out + 1] = table.concat({ try(st2.query, st2), try(st2.execute, st2), try(st2.close, st2),
        try(tx2.query, tx2, "SELECT 1"), try(tx2.execute, tx2, "DELETE FROM t"), try(tx2.commit, tx2),
        try(tx2.rollback, tx2), try(r2.stream.read, r2.stream, 2), try(r2.stream.close, r2.stream) }, ";")
    -- 5: everything still works: the file, the transaction with its
    -- uncommitted row, the statement, the stream
    assert(f:write("-more"))
    f:close()
    local n = assert(st:query())[1].n
    local line = assert(r.stream:read(3))
    st:close()
    assert(tx:rollback())
    local after = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
    out[#out + 1] = table.concat({ vol:readfile("f.txt"), n, line, after }, " ")
    return table.concat(out, " | ")
end"#
    ));
    let a = app()
        .extension(dir.volumes())
        .databases(sqlite_dbs(&tmp, &["main", "other"]))
        .granted("h:attacker", &source, all_grants());
    let out = attack_on(&a.start(), "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    assert_eq!(r.len(), 5, "{r:?}");
    let closed = "Internal: file is closed";
    let want = format!(
        "{closed};{closed};{closed};{closed};{closed};Invalid: file:scanner: the file is closed;ok"
    );
    for got in &r[..3] {
        assert_eq!(*got, want, "a file call reached a handle of another kind");
    }
    assert_eq!(
        r[3],
        "Invalid: statement is closed;Invalid: statement is closed;ok;\
         Invalid: transaction is not active;Invalid: transaction is not active;\
         Invalid: transaction is not active;Invalid: transaction is not active;\
         Invalid: the response stream is closed;ok"
    );
    // The file was neither written nor closed by the forged calls, the
    // row is still uncommitted, the statement and the stream still work.
    assert_eq!(r[4], "file-more 1 one 0");
    assert_eq!(dir.read("f.txt"), "file-more");
}

#[test]
fn sql_and_stream_ids_at_the_integer_limits_reach_nothing() {
    let tmp = TempDir::new("forged-sqllimits");
    let server = Server::start();
    let source = src(r#"
return function(base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES (1)"))
    local st = assert(tx:prepare("SELECT count(*) AS n FROM t"))
    local r = assert(http.get(base .. "/lines", { stream = true }))
    local real = { rawget(tx, "_h"), rawget(st, "_h"), rawget(r.stream, "_h") }
    local out = {}
    for _, id in ipairs({ math.maxinteger, math.mininteger, 0, -1, -real[1], real[1] + (1 << 32),
                          real[1] - (1 << 32), 2^53, -2^63, real[3] + 1, real[3] + 100 }) do
        rawset(tx, "_h", id)
        rawset(st, "_h", id)
        rawset(r.stream, "_h", id)
        out[#out + 1] = table.concat({ try(tx.query, tx, "SELECT 1"), try(tx.execute, tx, "DELETE FROM t"),
            try(tx.savepoint, tx, "s"), try(tx.commit, tx), try(tx.rollback, tx), try(st.query, st),
            try(st.execute, st), try(r.stream.read, r.stream, 1), try(st.close, st), try(r.stream.close, r.stream) }, ";")
    end
    rawset(tx, "_h", real[1])
    rawset(st, "_h", real[2])
    rawset(r.stream, "_h", real[3])
    local n = assert(st:query())[1].n
    local line = assert(r.stream:read(3))
    assert(tx:rollback())
    local after = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
    out[#out + 1] = table.concat({ n, line, after }, " ")
    return table.concat(out, " | ")
end"#);
    let a =
        app()
            .databases(sqlite_dbs(&tmp, &["main"]))
            .granted("h:attacker", &source, all_grants());
    let out = attack_on(&a.start(), "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    assert_eq!(r.len(), 12, "{r:?}");
    for got in &r[..11] {
        let calls: Vec<&str> = got.split(';').collect();
        assert_eq!(calls.len(), 10, "{got}");
        for call in &calls[..8] {
            assert!(call.starts_with("Invalid: "), "{call} in {got}");
        }
        // A close answers true whatever it names.
        assert_eq!(&calls[8..], ["ok", "ok"], "{got}");
    }
    // The transaction's row is still uncommitted, its statement and the
    // stream still work.
    assert_eq!(r[11], "1 one 0", "a forged id touched a real handle");
}

// ---------------------------------------------------------------------------
// Kernel objects found by identity: timers, tickers, executors, futures
// ---------------------------------------------------------------------------

const SLOW: &str = r#"
local time = require("time")
return { run = function() time.sleep("30ms") return "done" end }
"#;

#[test]
fn timers_executors_and_futures_are_found_by_identity_only() {
    let source = src(r#"
return function()
    local funcs = require("funcs")
    local out = {}
    local function add(s) out[#out + 1] = s end
    local t = assert(time.timer("200ms"))
    local tk = assert(time.ticker("5ms"))
    local ex = funcs.new()
    local fut = assert(funcs.async("h:slow"))
    -- 1: none of them travels in a message (not even to the sender)
    local sent = {}
    for _, o in ipairs({ t, tk, ex, fut, { inner = t } }) do sent[#sent + 1] = try(process.send, process.pid(), "x", o) end
    for _, o in ipairs({ t, fut }) do sent[#sent + 1] = try(process.spawn, "h:alive", "test:host", o) end
    add(table.concat(sent, ";"))
    -- 2: each kind's methods on plain tables, look-alikes and the other kinds
    local fakes = { {}, setmetatable({}, { __index = t }), { _id = 1 }, { op = 1, ch = {} } }
    local refused, other = 0, {}
    local calls = {
        { t.stop, "expected a timer" }, { t.reset, "expected a timer", "1ms" }, { t.channel, "expected a timer" },
        { fut.cancel, "expected a future" }, { fut.result, "expected a future" }, { fut.response, "expected a future" },
        { fut.is_complete, "expected a future" },
        { ex.call, "expected an executor", "h:slow" }, { ex.async, "expected an executor", "h:slow" },
        { ex.with_context, "expected an executor", { a = 1 } },
    }
    for _, c in ipairs(calls) do
        local selves = { fakes[1], fakes[2], fakes[3], fakes[4], c[2] == "expected a timer" and fut or t,
            c[2] == "expected an executor" and fut or ex }
        for _, self in ipairs(selves) do
            local got = try(c[1], self, c[3])
            if got:find(c[2], 1, true) then refused = refused + 1 else other[#other + 1] = got end
        end
    end
    add(refused .. " " .. table.concat(other, ","))
    -- 3: the real ones still work: the future settles, the ticker ticks,
    -- the timer fires
    local r = channel.select({ fut:response():case_receive(), time.after("5s"):case_receive() })
    add(tostring(r.channel == fut:response()) .. " " .. tostring(fut:result():data()))
    tk:channel():receive()
    tk:stop()
    local fired = channel.select({ t:channel():case_receive(), time.after("5s"):case_receive() })
    add(tostring(fired.channel == t:channel()))
    return table.concat(out, " | ")
end"#);
    let a = app()
        .function(
            ("h:slow", "run"),
            SLOW,
            warren_core::Pool::default(),
            Grants::new(),
        )
        .granted("h:attacker", &source, Grants::new());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    assert_eq!(
        r[0],
        "Invalid: payload: timer cannot be sent;Invalid: payload: timer cannot be sent;\
         Invalid: payload: executor cannot be sent;Invalid: payload: future cannot be sent;\
         Invalid: payload.inner: timer cannot be sent;Invalid: argument: timer cannot be sent;Invalid: argument: future cannot be sent"
    );
    assert_eq!(r[1], "60 ", "a forged self reached a kernel object");
    assert_eq!(&r[2..], ["true done", "true"]);
}
