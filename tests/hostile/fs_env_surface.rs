//! `fs` and `env` (modules.md §3–4) attacked by a tenant: without grants,
//! with paths that try to leave a volume (`..`, absolute paths, a symlink
//! pointing out), with values that lie, with a file larger than it may
//! hold, and by names that try to reach Warren's own environment.
//!
//! Guaranteed: the shape of the arguments is checked first, then the
//! grant, then existence, so code without a grant learns nothing; every
//! path is resolved beneath the volume's root directory handle (cap-std),
//! so nothing outside is read or written; a process sees only declared
//! variables. Each case asserts the exact outcome and that the neighbour
//! kept ticking; the harness checks that the runtime still starts
//! processes.

use std::path::PathBuf;
use std::sync::Arc;

use warren_core::{ErrorKind, Grants};
use warren_env::{Env, StorageDef, StorageKind, VariableDef};
use warren_lua::Volumes;
use warren_tests::grants;

use crate::harness::{Outcome, app, attack_on};

/// A temporary directory with a volume root `data` inside it and a
/// sentinel file beside the root, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("warren-hostile-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data/sub")).expect("root");
        std::fs::write(dir.join("secret.txt"), "outside").expect("sentinel");
        std::os::unix::fs::symlink(&dir, dir.join("data/link_out")).expect("symlink");
        Dir(dir)
    }

    fn volumes(&self) -> Arc<Volumes> {
        let mut v = Volumes::new();
        let vol = warren_fs::Volume::open("app.fs:data", &self.0.join("data"), 0o755, false)
            .expect("volume");
        v.insert(vol);
        Arc::new(v)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two declared variables: one on a static storage, one on the OS
/// environment (reading `PATH`), and a writable one in memory.
fn env() -> Arc<Env> {
    let storages = vec![
        StorageDef {
            id: "app.env:os".into(),
            kind: StorageKind::Os,
        },
        StorageDef {
            id: "app.env:fixed".into(),
            kind: StorageKind::Static(vec![("MODE".into(), "prod".into())]),
        },
        StorageDef {
            id: "app.env:mem".into(),
            kind: StorageKind::Memory,
        },
    ];
    let var = |id: &str, name: &str, storage: &str, readonly: bool| VariableDef {
        id: id.into(),
        variable: Some(name.into()),
        storage: storage.into(),
        default: None,
        readonly,
    };
    let variables = vec![
        var("app.env:mode", "MODE", "app.env:fixed", true),
        var("app.env:path", "PATH", "app.env:os", true),
        var("app.env:scratch", "SCRATCH", "app.env:mem", false),
    ];
    Arc::new(Env::new(storages, variables).expect("env"))
}

/// Runs `body` (a function body returning a string) as the attacker.
fn attack(dir: &Dir, body: &str, g: Grants) -> Outcome {
    let source = format!(
        r#"local fs = require("fs")
local env = require("env")
local ran = {{}}
local lie = setmetatable({{}}, {{
    __index = function() ran[#ran + 1] = "index" return "x" end,
    __tostring = function() ran[#ran + 1] = "tostring" return "x" end,
    __len = function() ran[#ran + 1] = "len" return 1 end,
    __eq = function() ran[#ran + 1] = "eq" return true end,
    __concat = function() ran[#ran + 1] = "concat" return "x" end,
}})
local function k(v, e) return v ~= nil and "ok" or tostring(e:kind()) end
return function()
{body}
end"#
    );
    let a = app()
        .extension(dir.volumes())
        .extension(env())
        .granted("h:attacker", &source, g);
    attack_on(&a.start(), "h:attacker", Vec::new())
}

#[test]
fn without_a_grant_no_volume_is_reachable_and_none_is_revealed() {
    let dir = Dir::new("nogrant");
    let out = attack(
        &dir,
        r#"local out = {}
    for _, id in ipairs({ "app.fs:data", "app.fs:missing", "app.fs:*", "*" }) do
        local v, e = fs.get(id)
        out[#out + 1] = v and "ok" or (e:kind() .. ":" .. e:message():gsub(id:gsub("%p", "%%%0"), "ID"))
    end
    out[#out + 1] = k(fs.get(""))
    out[#out + 1] = k(fs.get(lie))
    out[#out + 1] = #ran
    return table.concat(out, " | ")"#,
        Grants::new(),
    );
    out.assert_neighbour_ticks();
    let got = out.value();
    let parts: Vec<&str> = got.split(" | ").collect();
    assert_eq!(parts.len(), 7, "{got}");
    assert!(parts[0].starts_with("PermissionDenied:"), "{got}");
    for p in &parts[1..4] {
        assert_eq!(
            *p, parts[0],
            "an existing and a missing volume must look the same: {got}"
        );
    }
    assert_eq!(&parts[4..], ["Invalid", "Invalid", "0"], "{got}");
}

#[test]
fn paths_that_try_to_leave_the_volume_are_refused() {
    let dir = Dir::new("escape");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local out = {}
    for _, p in ipairs({ "../secret.txt", "/../secret.txt", "sub/../../secret.txt", "sub/./../../secret.txt",
                         "link_out/secret.txt", "/link_out/data/../secret.txt", "/etc/passwd", "/proc/self/environ",
                         "a\0b", "", string.rep("a/", 3000) .. "x" }) do
        out[#out + 1] = k(vol:readfile(p))
    end
    out[#out + 1] = k(vol:writefile("link_out/planted.txt", "x"))
    out[#out + 1] = k(vol:writefile("../planted.txt", "x"))
    out[#out + 1] = k(vol:mkdir("link_out/planted_dir"))
    out[#out + 1] = k(vol:chdir("link_out"))
    out[#out + 1] = k(vol:open("link_out/secret.txt", "r"))
    out[#out + 1] = k(vol:stat("link_out/secret.txt"))
    assert(vol:chdir("sub"))
    out[#out + 1] = k(vol:readfile("../../secret.txt"))
    return table.concat(out, " ")"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "Invalid Invalid Invalid Invalid PermissionDenied PermissionDenied NotFound NotFound Invalid Invalid Invalid \
         PermissionDenied Invalid PermissionDenied PermissionDenied PermissionDenied PermissionDenied Invalid"
    );
    assert!(
        !dir.0.join("planted.txt").exists(),
        "nothing was written outside"
    );
    assert!(
        !dir.0.join("planted_dir").exists(),
        "nothing was created outside"
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("secret.txt")).expect("sentinel"),
        "outside"
    );
}

#[test]
fn lying_values_are_refused_without_running_their_metamethods() {
    let dir = Dir::new("lies");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local out = {}
    out[#out + 1] = k(vol:readfile(lie))
    out[#out + 1] = k(vol:writefile("x.txt", lie))
    out[#out + 1] = k(vol:writefile("x.txt", "x", lie))
    out[#out + 1] = k(vol:open("x.txt", lie))
    out[#out + 1] = k(env.get(lie))
    out[#out + 1] = k(env.set("SCRATCH", lie))
    out[#out + 1] = tostring(pcall(vol.readfile, lie, "x.txt"))
    out[#out + 1] = #ran
    return table.concat(out, " ")"#,
        grants(&[("fs.get", "app.fs:data"), ("env.set", "SCRATCH")]),
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "Invalid Invalid Invalid Invalid Invalid Invalid false 0"
    );
}

#[test]
fn a_handle_with_rewritten_fields_reaches_nothing_it_was_not_granted() {
    let dir = Dir::new("rewritten");
    std::fs::write(dir.0.join("data/mine.txt"), "mine").expect("file");
    let out = attack(
        &dir,
        r#"local out = {}
    for _, field in ipairs({ "_id", "_cwd" }) do
        for _, v in ipairs({ "app.fs:other", 42, 1.5, true, lie, {}, "/..", "../..", "" }) do
            local vol = assert(fs.get("app.fs:data"))
            rawset(vol, field, v)
            out[#out + 1] = k(vol:readfile("../secret.txt")) .. "/" .. k(vol:readfile("mine.txt"))
        end
    end
    local vol = assert(fs.get("app.fs:data"))
    out[#out + 1] = vol:readfile("mine.txt")
    out[#out + 1] = #ran
    return table.concat(out, " ")"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    let got = out.value();
    let parts: Vec<&str> = got.split(' ').collect();
    assert_eq!(parts.len(), 20, "{got}");
    // Another id is not granted; anything but a string is not an id.
    assert_eq!(
        &parts[..9],
        [
            "PermissionDenied/PermissionDenied",
            "Invalid/Invalid",
            "Invalid/Invalid",
            "Invalid/Invalid",
            "Invalid/Invalid",
            "Invalid/Invalid",
            "PermissionDenied/PermissionDenied",
            "PermissionDenied/PermissionDenied",
            "Invalid/Invalid",
        ],
        "{got}"
    );
    // A working directory is resolved beneath the root like any path (a
    // relative one names a directory that does not exist): nothing
    // outside is read, whatever it says.
    assert_eq!(parts[9], "NotFound/NotFound", "{got}");
    for p in &parts[10..18] {
        assert_eq!(*p, "Invalid/Invalid", "{got}");
    }
    assert_eq!(&parts[18..], ["mine", "0"], "{got}");
    assert_eq!(
        std::fs::read_to_string(dir.0.join("secret.txt")).expect("sentinel"),
        "outside"
    );
}

#[test]
fn a_file_larger_than_the_process_may_hold_is_invalid_and_the_process_goes_on() {
    let dir = Dir::new("big");
    // Sparse: 64 MiB stated, no disk used; the harness allows 8 MiB.
    let f = std::fs::File::create(dir.0.join("data/big.bin")).expect("file");
    f.set_len(64 << 20).expect("size");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local _, err = vol:readfile("big.bin")
    local small = assert(vol:writefile("small.txt", "fine")) and vol:readfile("small.txt")
    return err:kind() .. " " .. small"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "Invalid fine");
}

#[test]
fn concurrent_reads_take_their_bytes_from_the_process_room() {
    // Each read held its file in host memory no limit counted: 63 reads
    // of a 60 MiB file by one 64 MiB process peaked at 9 GB. Now each
    // takes its bytes from what the process may hold (8 MiB here) before
    // it reads: of eight 3 MiB reads at once, two fit.
    let dir = Dir::new("room");
    let f = std::fs::File::create(dir.0.join("data/mid.bin")).expect("file");
    f.set_len(3 << 20).expect("size");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local got, refused, why, done = 0, 0, "", 0
    for _ = 1, 8 do
        coroutine.spawn(function()
            local data, err = vol:readfile("mid.bin")
            if data then got = got + 1
            else refused = refused + 1; why = tostring(err:kind()) .. " " .. err:message() end
            done = done + 1
        end)
    end
    while done < 8 do require("time").sleep("1ms") end
    return got .. " " .. refused .. " " .. why"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let mut parts = v.splitn(3, ' ');
    let got: usize = parts.next().and_then(|n| n.parse().ok()).expect("count");
    let refused: usize = parts.next().and_then(|n| n.parse().ok()).expect("count");
    assert!(got >= 1 && refused >= 1 && got + refused == 8, "{v}");
    assert!(
        v.contains("RateLimited readfile 'mid.bin': 3145728 bytes do not fit"),
        "{v}"
    );
}

/// A file copied onto its own end (`vol:writefile(p, file, "a")` with the
/// file open on `p`) is copied once: the copy reads what the source held
/// when the call started. Unbounded, it chased the end it was writing and
/// filled the disk (16 GB in 45 s), its time on the blocking lane counted
/// by no CPU budget.
#[test]
fn a_file_appended_to_itself_is_copied_once() {
    let dir = Dir::new("selfappend");
    let original: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.0.join("data/a.bin"), &original).expect("file");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local f = assert(vol:open("a.bin", "r"))
    local ok, err = vol:writefile("a.bin", f, "a")
    f:close()
    return tostring(ok) .. " " .. tostring(err) .. " " .. vol:stat("a.bin").size"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "true nil 300000");
    let after = std::fs::read(dir.0.join("data/a.bin")).expect("file");
    assert!(
        after[..150_000] == original[..] && after[150_000..] == original[..],
        "the file is itself twice"
    );
}

/// A line (or word) longer than a scanner's token limit fails the scan
/// with `INVALID` naming the limit, and the process goes on: unbounded,
/// the scanner buffered the whole 20 MiB line and its process ended at the
/// memory limit.
#[test]
fn a_token_longer_than_the_limit_fails_the_scan_not_the_process() {
    let dir = Dir::new("longtoken");
    // Sparse: 20 MiB of zero bytes without a newline or a space, no disk used.
    let f = std::fs::File::create(dir.0.join("data/zero.bin")).expect("file");
    f.set_len(20 << 20).expect("size");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local out = {}
    for _, split in ipairs({ "lines", "words" }) do
        local f = assert(vol:open("zero.bin", "r"))
        local sc = assert(f:scanner(split))
        local ok = sc:scan()
        local err = sc:err()
        out[#out + 1] = split .. " " .. tostring(ok) .. " " .. err:kind() .. ": " .. err:message()
        out[#out + 1] = tostring(sc:scan()) .. " " .. sc:text()
        f:close()
    end
    return table.concat(out, " | ")"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_neighbour_ticks();
    let refused = "Invalid: file:scanner: token too long (the limit is 65536 bytes)";
    assert_eq!(
        out.value(),
        format!("lines false {refused} | false  | words false {refused} | false ")
    );
}

#[test]
fn only_declared_variables_are_visible_and_only_with_a_grant() {
    let dir = Dir::new("env");
    let body = r#"local out = {}
    for _, name in ipairs({ "MODE", "app.env:mode", "PATH", "HOME", "USER", "app.env:os", "app.env:nope" }) do
        local v, e = env.get(name)
        out[#out + 1] = v and "ok" or e:kind()
    end
    local all = assert(env.get_all())
    local names = {}
    for name in pairs(all) do names[#names + 1] = name end
    table.sort(names)
    out[#out + 1] = "[" .. table.concat(names, ",") .. "]"
    out[#out + 1] = k(env.set("MODE", "dev"))
    out[#out + 1] = k(env.set("SCRATCH", string.rep("x", 70000)))
    return table.concat(out, " ")"#;
    let none = attack(&dir, body, Grants::new());
    none.assert_neighbour_ticks();
    assert_eq!(
        none.value(),
        "PermissionDenied PermissionDenied PermissionDenied PermissionDenied PermissionDenied \
         PermissionDenied PermissionDenied [] PermissionDenied PermissionDenied"
    );
    let all = attack(&dir, body, grants(&[("env.get", "*"), ("env.set", "*")]));
    all.assert_neighbour_ticks();
    // HOME and USER are not declared: never Warren's own environment.
    assert_eq!(
        all.value(),
        "ok ok ok NotFound NotFound NotFound NotFound [MODE,PATH] PermissionDenied Invalid"
    );
}

/// A file or variable call from code that cannot be suspended (a sort
/// comparator, a gsub replacement, a `__tostring`, a coroutine resumed in
/// one) is refused before it starts: no file written, no variable set, no
/// late result waking the process out of a later wait; the same calls
/// outside work.
#[test]
fn calls_from_code_that_cannot_wait_start_nothing() {
    let dir = Dir::new("cboundary");
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local time = require("time")
    local out = {}
    local done = false
    table.sort({ 2, 1 }, function(a, b)
        if not done then
            done = true
            out[#out + 1] = k(vol:writefile("planted.txt", "x"))
            out[#out + 1] = k(coroutine.wrap(function() return env.set("SCRATCH", "y") end)())
        end
        return a < b
    end)
    string.gsub("a", ".", function() out[#out + 1] = k(vol:readfile("secret.txt")) end)
    local _ = tostring(setmetatable({}, { __tostring = function()
        out[#out + 1] = k(env.get("MODE"))
        return "x"
    end }))
    local t0 = time.now()
    time.sleep("100ms")
    out[#out + 1] = tostring(time.now():sub(t0):seconds() >= 0.09)
    out[#out + 1] = k(vol:readfile("planted.txt"))
    out[#out + 1] = tostring(env.get("SCRATCH"))
    out[#out + 1] = tostring(env.get("MODE"))
    return table.concat(out, " ")"#,
        grants(&[
            ("fs.get", "app.fs:data"),
            ("env.get", "*"),
            ("env.set", "*"),
        ]),
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "Invalid Invalid Invalid Invalid true NotFound nil prod"
    );
    assert!(
        !dir.0.join("data").join("planted.txt").exists(),
        "a refused write ran"
    );
}

#[test]
fn directory_listings_kept_in_iterators_are_measured() {
    // `vol:readdir` answers an iterator whose closure (a function of the
    // `fs` module's chunk) holds the listing: a process that keeps only
    // iterators holds every listing, and the measure must look into them
    // (it skips the kernel's own functions, not the modules').
    let dir = Dir::new("listings");
    for i in 0..200 {
        let name = format!("{i:03}{}", "n".repeat(200));
        std::fs::write(dir.0.join("data/sub").join(name), "x").expect("file");
    }
    let out = attack(
        &dir,
        r#"local vol = assert(fs.get("app.fs:data"))
    local kept = {}
    for i = 1, 400 do kept[i] = assert(vol:readdir("sub")) end
    return "kept " .. #kept"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    out.assert_neighbour_ticks();
}
