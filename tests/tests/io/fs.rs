//! `fs` through real processes on real files in a temporary directory:
//! every call, the error kinds, read-only volumes, and paths that try to
//! leave the volume (`..`, absolute paths, symlinks out).

use std::sync::Arc;

use warren_core::Value;
use warren_lua::Volumes;
use warren_tests::*;

use super::{TempDir, grants};

/// Volume `app.fs:<name>` on `dir/<name>` with `mode`.
fn volumes(dir: &TempDir, list: &[(&str, u32)]) -> Arc<Volumes> {
    let mut out = Volumes::new();
    for (name, mode) in list {
        let root = dir.0.join(name);
        let vol =
            warren_fs::Volume::open(&format!("app.fs:{name}"), &root, *mode, true).expect("volume");
        out.insert(vol);
    }
    Arc::new(out)
}

fn run_fs(dir: &TempDir, source: &str, g: warren_core::Grants) -> Value {
    let exit = App::new()
        .extension(volumes(dir, &[("data", 0o755), ("ro", 0o555)]))
        .granted("t:main", source, g)
        .run("t:main", Vec::new());
    match exit {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn every_call_of_volumes_and_files() {
    let dir = TempDir::new("fs-calls");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    return function()
        local vol = assert(fs.get("app.fs:data"))
        assert(vol:writefile("a.txt", "hello\nworld\n"))
        assert(vol:write_file("a.txt", "more\n", "a"))
        assert(vol:readfile("a.txt") == "hello\nworld\nmore\n")
        local _, exists = vol:writefile("a.txt", "x", "wx")
        assert(exists:kind() == errors.ALREADY_EXISTS)
        assert(vol:exists("a.txt") == true and vol:exists("nope") == false)
        assert(vol:mkdir("sub") and vol:isdir("sub") == true and vol:isdir("a.txt") == false)
        local st = assert(vol:stat("a.txt"))
        assert(st.size == 17 and st.is_dir == false and st.type == fs.type.FILE and st.name == "a.txt")
        assert(math.type(st.modified) == "integer")
        assert(vol:chdir("sub") and vol:pwd() == "/sub")
        assert(vol:writefile("b.txt", "in sub"))
        assert(vol:readfile("/sub/b.txt") == "in sub")
        assert(vol:chdir("/"))
        local names = {}
        for e in vol:readdir("/") do names[#names + 1] = e.name .. ":" .. e.type end
        assert(table.concat(names, ",") == "a.txt:file,sub:directory", table.concat(names, ","))
        local f = assert(vol:open("a.txt", "r"))
        assert(f:read(5) == "hello")
        assert(f:seek(fs.seek.SET, 6) == 6)
        assert(f:read(5) == "world")
        assert(f:stat().size == 17)
        local sc = assert(f:scanner())
        local lines = {}
        while sc:scan() do lines[#lines + 1] = sc:text() end
        assert(sc:err() == nil and table.concat(lines, "|") == "|more", table.concat(lines, "|"))
        local _, eof = f:read()
        assert(eof:kind() == errors.NOT_FOUND, "end of file")
        assert(f:close() and f:close())
        local _, closed = f:read()
        assert(closed:kind() == errors.INTERNAL, tostring(closed))
        local w = assert(vol:open("c.txt", "w"))
        assert(w:write("abc") and w:sync())
        local _, empty = w:write("")
        assert(empty:kind() == errors.INVALID)
        w:close()
        assert(vol:readfile("c.txt") == "abc")
        local _, nonempty = vol:remove("sub")
        assert(nonempty:kind() == errors.INVALID)
        assert(vol:remove("sub/b.txt") and vol:remove("sub"))
        local _, gone = vol:readfile("sub/b.txt")
        return gone:kind()
    end"#,
        grants(&[("fs.get", "app.fs:*")]),
    );
    assert_eq!(v, s("NotFound"));
}

#[test]
fn paths_never_leave_the_volume() {
    let dir = TempDir::new("fs-escape");
    std::fs::write(dir.0.join("secret.txt"), "outside").expect("sentinel");
    // A symlink inside the volume pointing at its parent (outside).
    std::fs::create_dir_all(dir.0.join("data")).expect("root");
    std::os::unix::fs::symlink(&dir.0, dir.0.join("data/link_out")).expect("symlink");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    return function()
        local vol = assert(fs.get("app.fs:data"))
        local out = {}
        local function k(v, e) out[#out + 1] = v ~= nil and "ok" or e:kind() end
        k(vol:readfile("../secret.txt"))
        k(vol:readfile("/../secret.txt"))
        k(vol:readfile("a/../../secret.txt"))
        k(vol:writefile("../planted.txt", "x"))
        k(vol:readfile("/etc/passwd"))
        k(vol:readfile("link_out/secret.txt"))
        k(vol:writefile("link_out/planted.txt", "x"))
        k(vol:readfile(""))
        k(vol:readfile("a\0b"))
        k(vol:chdir(".."))
        return table.concat(out, " ")
    end"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    assert_eq!(
        v,
        s(
            "Invalid Invalid Invalid Invalid NotFound PermissionDenied PermissionDenied Invalid Invalid Invalid"
        )
    );
    assert!(
        !dir.0.join("planted.txt").exists(),
        "nothing written outside"
    );
}

#[test]
fn grants_and_read_only_volumes() {
    let dir = TempDir::new("fs-grants");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    return function()
        local out = {}
        local function k(v, e) out[#out + 1] = v ~= nil and "ok" or e:kind() end
        k(fs.get("app.fs:data"))
        k(fs.get("app.fs:missing"))
        k(fs.get(""))
        local ro = assert(fs.get("app.fs:ro"))
        k(ro:writefile("x.txt", "x"))
        k(ro:mkdir("d"))
        k(ro:exists("x.txt"))
        return table.concat(out, " ")
    end"#,
        grants(&[("fs.get", "app.fs:ro"), ("fs.get", "app.fs:missing")]),
    );
    assert_eq!(
        v,
        s("PermissionDenied NotFound Invalid PermissionDenied PermissionDenied ok")
    );
}

#[test]
fn a_write_is_refused_for_its_grant_or_mode_before_its_data_is_copied() {
    // 9 MiB to copy (a 3 MiB string as path, data and mode) for a process
    // of 8 MiB: to a granted volume the copy is refused as too large; to a
    // volume the handle's rewritten `_id` names without a grant, the grant
    // is what refuses it. On a read-only volume a bad write mode is still
    // INVALID (the shape first), a good one PERMISSION_DENIED. The bad
    // mode is 1 MiB, not another 3 MiB string: Lua keeps what a frame's
    // registers last held reachable (the `mib` copies `..` read, the
    // buffer `string.rep` built), so with two 3 MiB strings the process
    // really held about 8 MiB, and whether that fit depended on how much
    // garbage the VM had when it was resumed (1 run in 6 on a busy machine
    // failed with a memory error before the call).
    let dir = TempDir::new("fs-before-copy");
    let limits = warren_core::HostLimits {
        memory_per_process: 8 << 20,
        ..warren_core::HostLimits::default()
    };
    let exit = App::new()
        .limits(limits)
        .extension(volumes(
            &dir,
            &[("data", 0o755), ("ro", 0o555), ("secret", 0o755)],
        ))
        .granted(
            "t:main",
            r#"local fs = require("fs")
    return function()
        local mib = string.rep("x", 1024 * 1024)
        local big = mib .. mib .. mib
        mib = nil
        local out = {}
        local function k(v, err) out[#out + 1] = v and "ok" or err:kind() end
        local vol = assert(fs.get("app.fs:data"))
        k(vol:writefile(big, big, big))
        local forged = assert(fs.get("app.fs:data"))
        rawset(forged, "_id", "app.fs:secret")
        k(forged:writefile(big, big, big))
        local ro = assert(fs.get("app.fs:ro"))
        k(ro:writefile("a.txt", big, "w" .. string.rep("x", 1024 * 1024)))
        k(ro:writefile("a.txt", big, "w"))
        return table.concat(out, " ")
    end"#,
            grants(&[("fs.get", "app.fs:data"), ("fs.get", "app.fs:ro")]),
        )
        .run("t:main", Vec::new());
    assert_eq!(
        exit,
        Ok(s("Invalid PermissionDenied Invalid PermissionDenied"))
    );
}

#[test]
fn writefile_refuses_before_it_creates_or_overwrites_anything() {
    // A trailing slash names a directory (Linux's `open("a.txt/")` is
    // ENOTDIR): the file `a.txt` is not overwritten through it. A source
    // file not open for reading is refused before the destination is
    // created.
    let dir = TempDir::new("fs-refused-writes");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    return function()
        local vol = assert(fs.get("app.fs:data"))
        assert(vol:writefile("a.txt", "hello"))
        local out = {}
        local function k(v, e) out[#out + 1] = v ~= nil and "ok" or (e:kind() .. ": " .. e:message()) end
        k(vol:writefile("a.txt/", "x"))
        k(vol:writefile("a.txt/", "x", "a"))
        k(vol:writefile("a.txt/", assert(vol:open("a.txt", "r"))))
        k(vol:open("a.txt/", "w"))
        local w = assert(vol:open("w.bin", "w"))
        k(vol:writefile("x.bin", w))
        out[#out + 1] = tostring(vol:exists("x.bin"))
        out[#out + 1] = vol:readfile("a.txt")
        return table.concat(out, " | ")
    end"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    assert_eq!(
        v,
        s(
            "NotFound: writefile 'a.txt/': not a directory | NotFound: writefile 'a.txt/': not a directory \
           | NotFound: open 'a.txt/': not a directory | NotFound: open 'a.txt/': not a directory \
           | Invalid: file 'w.bin' is not open for reading | false | hello"
        )
    );
    assert!(!dir.0.join("data/x.bin").exists(), "x.bin was created");
}

#[test]
fn a_copy_on_the_blocking_lane_counts_against_the_cpu_budget() {
    // A sparse file of 256 GiB (one byte written past a seek) copied with
    // `writefile`: the copy's reads and writes run on the blocking lane,
    // and were charged to no one, so a 1 s budget let it write gigabytes
    // for as long as it liked. Now the process ends at its budget.
    let dir = TempDir::new("fs-copy-budget");
    let limits = warren_core::HostLimits {
        cpu_budget: Some(std::time::Duration::from_millis(300)),
        ..warren_core::HostLimits::default()
    };
    let exit = App::new()
        .limits(limits)
        .extension(volumes(&dir, &[("data", 0o755)]))
        .granted(
            "t:main",
            r#"local fs = require("fs")
    return function()
        local vol = assert(fs.get("app.fs:data"))
        local w = assert(vol:open("sparse.bin", "w"))
        assert(w:seek(fs.seek.SET, 256 * 1024 * 1024 * 1024))
        assert(w:write("x"))
        w:close()
        return vol:writefile("copy.bin", assert(vol:open("sparse.bin", "r")))
    end"#,
            grants(&[("fs.get", "app.fs:data")]),
        )
        .run("t:main", Vec::new());
    let err = exit.expect_err("ended at its budget");
    assert!(err.message.contains("cpu budget"), "{err:?}");
    let copied = std::fs::metadata(dir.0.join("data/copy.bin")).map_or(0, |m| m.len());
    assert!(
        copied < 512 << 20,
        "{copied} bytes copied under a 300 ms budget"
    );
}

#[test]
fn writefile_from_a_file_copies_what_it_held_past_its_position() {
    let dir = TempDir::new("fs-copy");
    std::fs::create_dir_all(dir.0.join("data")).expect("root");
    let original: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.0.join("data/src.bin"), &original).expect("file");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    return function()
        local vol = assert(fs.get("app.fs:data"))
        local f = assert(vol:open("src.bin", "r"))
        assert(f:seek(fs.seek.SET, 1000) == 1000)
        assert(vol:writefile("tail.bin", f))
        local _, eof = f:read(1)
        assert(eof:kind() == errors.NOT_FOUND, "the source was read to its end")
        assert(f:seek(fs.seek.SET, 0) == 0)
        assert(vol:writefile("src.bin", f, "a"))
        f:close()
        return vol:stat("tail.bin").size .. " " .. vol:stat("src.bin").size
    end"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    assert_eq!(v, s("149000 300000"));
    let tail = std::fs::read(dir.0.join("data/tail.bin")).expect("tail");
    assert!(tail == original[1000..], "the copy is the source past 1000");
    let doubled = std::fs::read(dir.0.join("data/src.bin")).expect("src");
    assert!(
        doubled[..150_000] == original[..] && doubled[150_000..] == original[..],
        "a file appended to itself is itself twice"
    );
}

#[test]
fn scanners_join_tokens_across_chunks_and_stop_past_the_token_limit() {
    // Files are read in 64 KiB chunks: the second line, the second word
    // and the rune `é` straddle the first chunk's end. A line of 65,536
    // bytes is the longest one (Go's `MaxScanTokenSize`); one byte more
    // ends the scan with INVALID naming the limit.
    let dir = TempDir::new("fs-scan");
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).expect("root");
    let mut lines = b"a\r\n".to_vec();
    lines.extend(vec![b'x'; 65_536]);
    lines.extend(b"\nb\n");
    lines.extend(vec![b'y'; 65_537]);
    lines.extend(b"\nnever\n");
    std::fs::write(data.join("lines.txt"), lines).expect("lines");
    let mut words = vec![b'p'; 65_000];
    words.extend(b" \t");
    words.extend(vec![b'q'; 1_000]);
    words.extend(b"\n  r");
    std::fs::write(data.join("words.txt"), words).expect("words");
    let mut runes = vec![b'a'; 65_535];
    runes.extend("é€".as_bytes());
    runes.extend(b"\xffb\xc3");
    std::fs::write(data.join("runes.txt"), runes).expect("runes");
    let v = run_fs(
        &dir,
        r#"local fs = require("fs")
    local function scan(vol, name, split)
        local f = assert(vol:open(name, "r"))
        local sc = assert(f:scanner(split))
        local got = {}
        while sc:scan() do got[#got + 1] = sc:text() end
        f:close()
        return got, sc:err()
    end
    return function()
        local vol = assert(fs.get("app.fs:data"))
        local out = {}
        local got, err = scan(vol, "lines.txt", "lines")
        out[#out + 1] = #got .. " " .. got[1] .. " " .. #got[2] .. " " .. got[3]
        out[#out + 1] = err:kind() .. ": " .. err:message() .. " " .. err:details().limit
        got, err = scan(vol, "words.txt", "words")
        out[#out + 1] = #got .. " " .. #got[1] .. " " .. #got[2] .. " " .. got[3] .. " " .. tostring(err)
        got, err = scan(vol, "runes.txt", "runes")
        local tail = {}
        for i = 65536, #got do tail[#tail + 1] = #got[i] .. ":" .. got[i]:byte() end
        out[#out + 1] = #got .. " " .. table.concat(tail, ",") .. " " .. tostring(err)
        got, err = scan(vol, "runes.txt", "bytes")
        out[#out + 1] = #got .. " " .. got[#got]:byte() .. " " .. tostring(err)
        return table.concat(out, " | ")
    end"#,
        grants(&[("fs.get", "app.fs:data")]),
    );
    assert_eq!(
        v,
        s(
            "3 a 65536 b | Invalid: file:scanner: token too long (the limit is 65536 bytes) 65536 \
           | 3 65000 1000 r nil | 65540 2:195,3:226,1:255,1:98,1:195 nil | 65543 195 nil"
        )
    );
}
