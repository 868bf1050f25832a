//! The `fs` volume engine against real directories: every call, every error
//! kind, the volume mode, and the escapes a hostile tenant would try
//! (traversal, host paths, symbolic links out, chains, loops, a directory
//! swapped for a link, races with renames, FIFOs, oversized requests).
//! Each test works in its own directory under the system temp dir, holding
//! the volume root `root/` and, beside it, `outside/secret.txt`, a sentinel
//! no volume call may read or change.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use warren_core::{ErrorKind, ProcError, Value};
use warren_fs::{
    File, MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_READ_CHUNK, OpenMode, Volume, Whence, WriteMode,
    normalize, parse_mode,
};

const SENTINEL: &[u8] = b"SENTINEL: outside the volume";

/// A scratch directory with `root/` (the volume) and `outside/secret.txt`.
struct Scratch {
    base: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("warren-fs-test-{}-{tag}-{n}", std::process::id());
        let base = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root")).expect("root");
        std::fs::create_dir_all(base.join("outside")).expect("outside");
        std::fs::write(base.join("outside/secret.txt"), SENTINEL).expect("sentinel");
        Scratch { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    fn outside(&self) -> PathBuf {
        self.base.join("outside")
    }

    fn volume(&self, mode: u32) -> Arc<Volume> {
        Volume::open("app:vol", &self.root(), mode, false).expect("open volume")
    }

    /// Asserts the sentinel is intact and nothing new appeared outside.
    fn assert_outside_untouched(&self) {
        let secret = std::fs::read(self.outside().join("secret.txt")).expect("sentinel");
        assert_eq!(secret, SENTINEL, "the sentinel outside the volume changed");
        let names: Vec<_> = std::fs::read_dir(self.outside())
            .expect("outside")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            names,
            ["secret.txt"],
            "a file was created outside the volume"
        );
    }

    /// Asserts no error message leaks the host path of the scratch area.
    fn assert_no_host_path(&self, err: &ProcError) {
        let host = self.base.to_string_lossy();
        assert!(
            !err.message.contains(host.as_ref()),
            "host path leaked: {}",
            err.message
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The kind of the error `r` must be.
fn kind<T: std::fmt::Debug>(r: Result<T, ProcError>) -> ErrorKind {
    r.expect_err("the call should fail").kind
}

/// Runs `f` on a thread and fails the test if it takes over 20 s.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the call hung")
}

fn limit_of(err: &ProcError) -> Option<i64> {
    match &err.details {
        Some(Value::Map(fields)) => fields.iter().find_map(|(k, v)| match (k.as_str(), v) {
            (Some("limit"), Value::Int(n)) => Some(*n),
            _ => None,
        }),
        _ => None,
    }
}

#[test]
fn handles_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Volume>();
    send::<File>();
}

// ---- paths -------------------------------------------------------------

#[test]
fn normalize_is_lexical_and_refuses_traversal() {
    assert_eq!(normalize("/", "a/./b//c/..").expect("ok"), "a/b");
    assert_eq!(normalize("/a/b", "c").expect("ok"), "a/b/c");
    assert_eq!(normalize("/a/b", "/c").expect("ok"), "c");
    assert_eq!(normalize("/a", "..").expect("ok"), ".");
    assert_eq!(normalize("/", "/etc/passwd").expect("ok"), "etc/passwd");
    for p in ["../x", "/../../etc/passwd", "a/../../x", "..", "/.."] {
        let err = normalize("/", p).expect_err(p);
        assert_eq!(err.kind, ErrorKind::Invalid, "{p}");
        assert!(
            err.message.contains("path traversal not allowed"),
            "{}",
            err.message
        );
    }
    assert_eq!(kind(normalize("/a", "../../x")), ErrorKind::Invalid);
    assert_eq!(kind(normalize("/", "")), ErrorKind::Invalid);
    assert_eq!(kind(normalize("/", "a\0b")), ErrorKind::Invalid);
    assert_eq!(
        kind(normalize("/", &"a".repeat(MAX_PATH_BYTES + 1))),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(normalize("/", &"a/".repeat(MAX_PATH_DEPTH + 1))),
        ErrorKind::Invalid
    );
    // A working directory plus a relative path also stays within the bounds.
    let half = format!("/{}", "b".repeat(MAX_PATH_BYTES - 10));
    assert_eq!(
        kind(normalize(&half, "cccccccccccccccccccc")),
        ErrorKind::Invalid
    );
}

#[test]
fn malformed_paths_are_invalid_on_every_call() {
    let s = Scratch::new("malformed");
    let v = s.volume(0o755);
    let long = "x".repeat(MAX_PATH_BYTES + 1);
    for p in ["", "a\0b", long.as_str(), "../x"] {
        assert_eq!(kind(v.read_file("/", p, 10)), ErrorKind::Invalid, "{p:?}");
        assert_eq!(
            kind(v.write_file("/", p, b"x", WriteMode::Truncate)),
            ErrorKind::Invalid
        );
        assert_eq!(
            kind(v.open_file("/", p, OpenMode::Read)),
            ErrorKind::Invalid
        );
        assert_eq!(kind(v.exists("/", p)), ErrorKind::Invalid);
        assert_eq!(kind(v.is_dir("/", p)), ErrorKind::Invalid);
        assert_eq!(kind(v.stat("/", p)), ErrorKind::Invalid);
        assert_eq!(kind(v.mkdir("/", p)), ErrorKind::Invalid);
        assert_eq!(kind(v.remove("/", p)), ErrorKind::Invalid);
        assert_eq!(kind(v.read_dir("/", p, 10)), ErrorKind::Invalid);
        assert_eq!(kind(v.resolve_dir("/", p)), ErrorKind::Invalid);
    }
    s.assert_outside_untouched();
}

// ---- opening a volume --------------------------------------------------

#[test]
fn open_checks_the_root_and_the_mode() {
    let s = Scratch::new("open");
    let v = s.volume(0o644);
    assert_eq!(v.id(), "app:vol");
    assert_eq!(v.mode(), 0o755, "read bits get execute bits");
    assert!(v.readable() && v.writable());
    let missing = s.base.join("nope");
    let err = Volume::open("app:missing", &missing, 0o755, false).expect_err("missing root");
    assert_eq!(err.kind, ErrorKind::NotFound);
    s.assert_no_host_path(&err);
    let file = s.outside().join("secret.txt");
    assert!(
        Volume::open("app:file", &file, 0o755, false).is_err(),
        "a file is no root"
    );
    assert_eq!(
        kind(Volume::open("app:bad", &s.root(), 0o1777, false)),
        ErrorKind::Invalid
    );
    assert_eq!(parse_mode("0555").expect("mode"), 0o555);
    assert_eq!(kind(parse_mode("0x55")), ErrorKind::Invalid);
}

#[test]
fn auto_init_creates_the_root_and_its_parents() {
    let s = Scratch::new("autoinit");
    let root = s.base.join("var/uploads");
    let v = Volume::open("app:up", &root, 0o755, true).expect("auto_init");
    v.write_file("/", "f.txt", b"hi", WriteMode::Truncate)
        .expect("write");
    assert_eq!(std::fs::read(root.join("f.txt")).expect("host"), b"hi");
    // Opening again (it exists now) is fine.
    Volume::open("app:up", &root, 0o755, true).expect("again");
}

// ---- reading and writing whole files ----------------------------------

#[test]
fn write_file_modes_and_read_file() {
    let s = Scratch::new("rw");
    let v = s.volume(0o755);
    v.write_file("/", "a.txt", b"hello", WriteMode::Truncate)
        .expect("w");
    assert_eq!(v.read_file("/", "a.txt", 100).expect("read"), b"hello");
    v.write_file("/", "/a.txt", b" world", WriteMode::Append)
        .expect("a");
    assert_eq!(
        v.read_file("/", "a.txt", 100).expect("read"),
        b"hello world"
    );
    v.write_file("/", "a.txt", b"new", WriteMode::Truncate)
        .expect("w again");
    assert_eq!(v.read_file("/", "a.txt", 100).expect("read"), b"new");
    assert_eq!(
        kind(v.write_file("/", "a.txt", b"x", WriteMode::Exclusive)),
        ErrorKind::AlreadyExists
    );
    v.write_file("/", "b.txt", b"", WriteMode::Exclusive)
        .expect("wx on a new file");
    assert_eq!(v.read_file("/", "b.txt", 0).expect("empty file"), b"");
    assert_eq!(std::fs::read(s.root().join("a.txt")).expect("host"), b"new");
    let err = v.read_file("/", "missing.txt", 10).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("'missing.txt'"), "{}", err.message);
    s.assert_no_host_path(&err);
    assert_eq!(
        kind(v.write_file("/", "nodir/x.txt", b"x", WriteMode::Truncate)),
        ErrorKind::NotFound
    );
    v.mkdir("/", "d").expect("mkdir");
    assert_eq!(kind(v.read_file("/", "d", 10)), ErrorKind::Invalid);
    assert_eq!(
        kind(v.write_file("/", "d", b"x", WriteMode::Truncate)),
        ErrorKind::Invalid
    );
    assert_eq!(kind(v.read_file("/", "/", 10)), ErrorKind::Invalid);
    assert_eq!(kind(v.read_file("/", "a.txt/x", 10)), ErrorKind::NotFound);
}

/// A path written with a trailing `/` (or `/.`) names a directory, as on
/// Linux (`open("a.txt/")` is `ENOTDIR`): no call reaches the file `a.txt`
/// through it, and no open creates or truncates anything first.
#[test]
fn a_trailing_slash_never_reaches_a_file() {
    let s = Scratch::new("slash");
    let v = s.volume(0o755);
    v.write_file("/", "a.txt", b"hello", WriteMode::Truncate)
        .expect("w");
    for p in ["a.txt/", "a.txt//", "/a.txt/.", "d/../a.txt/"] {
        for mode in [WriteMode::Truncate, WriteMode::Append, WriteMode::Exclusive] {
            let err = v.write_file("/", p, b"x", mode).expect_err(p);
            assert_eq!(err.kind, ErrorKind::NotFound, "{p} {mode:?}: {err}");
        }
        let err = v.open_file("/", p, OpenMode::Write).expect_err(p);
        assert_eq!(
            err.message,
            format!("open '{p}': not a directory"),
            "the error names the path as written"
        );
        assert_eq!(
            kind(v.open_file("/", p, OpenMode::Append)),
            ErrorKind::NotFound
        );
        assert_eq!(kind(v.read_file("/", p, 100)), ErrorKind::NotFound);
        assert_eq!(
            kind(v.open_file("/", p, OpenMode::Read)),
            ErrorKind::NotFound
        );
        assert_eq!(kind(v.stat("/", p)), ErrorKind::NotFound);
        assert_eq!(kind(v.is_dir("/", p)), ErrorKind::NotFound);
        assert!(!v.exists("/", p).expect("exists"), "{p}");
        assert_eq!(kind(v.remove("/", p)), ErrorKind::NotFound);
    }
    assert_eq!(
        std::fs::read(s.root().join("a.txt")).expect("host"),
        b"hello"
    );
    // A new name with a trailing slash names no directory: nothing created.
    assert_eq!(
        kind(v.write_file("/", "new.txt/", b"x", WriteMode::Truncate)),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(v.open_file("/", "new.txt/", OpenMode::Exclusive)),
        ErrorKind::NotFound
    );
    assert!(!s.root().join("new.txt").exists(), "a file was created");
    // Directories are still directories with a slash.
    v.mkdir("/", "d/").expect("mkdir d/");
    assert!(v.is_dir("/", "d/").expect("is_dir") && v.exists("/", "d/.").expect("exists"));
    assert_eq!(v.stat("/", "d/").expect("stat").name, "d");
    assert_eq!(
        kind(v.write_file("/", "d/", b"x", WriteMode::Truncate)),
        ErrorKind::Invalid
    );
    v.remove("/", "d/").expect("remove d/");
    assert!(!s.root().join("d").exists());
    v.remove("/", "a.txt").expect("remove a.txt");
}

#[test]
fn read_file_is_bounded_by_the_callers_limit() {
    let s = Scratch::new("limit");
    let v = s.volume(0o755);
    v.write_file("/", "ten", b"0123456789", WriteMode::Truncate)
        .expect("w");
    assert_eq!(
        v.read_file("/", "ten", 10)
            .expect("exactly the limit")
            .len(),
        10
    );
    let err = v.read_file("/", "ten", 9).expect_err("over the limit");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(limit_of(&err), Some(9));
    // A sparse file claiming 4 GiB: refused against a small limit without
    // reserving (or reading) more than the limit.
    let huge = std::fs::File::create(s.root().join("huge")).expect("create");
    huge.set_len(4 << 30).expect("sparse");
    let v2 = Arc::clone(&v);
    let err = bounded(move || v2.read_file("/", "huge", 1 << 20)).expect_err("huge");
    assert_eq!(limit_of(&err), Some(1 << 20));
}

/// Read buffers are reused (`warren_core::bufpool`): a read into one that
/// held a larger file's bytes shows its own bytes only.
#[test]
fn a_reused_read_buffer_holds_only_the_files_own_bytes() {
    let s = Scratch::new("reuse");
    let v = s.volume(0o755);
    let big = vec![b'A'; 60 << 10];
    v.write_file("/", "big", &big, WriteMode::Truncate)
        .expect("w");
    v.write_file("/", "small", &[b'b'; 5000], WriteMode::Truncate)
        .expect("w");
    for _ in 0..3 {
        let read = v.read_file("/", "big", 1 << 20).expect("big");
        warren_core::bufpool::give(read);
        let read = v.read_file("/", "small", 1 << 20).expect("small");
        assert_eq!(read, vec![b'b'; 5000]);
        warren_core::bufpool::give(read);
    }
    let mut f = v.open_file("/", "small", OpenMode::Read).expect("open");
    warren_core::bufpool::give(vec![b'Z'; 8 << 10]);
    let chunk = f.read(3000).expect("read").expect("bytes");
    assert_eq!(chunk, vec![b'b'; 3000]);
}

#[test]
fn new_files_and_directories_are_masked_by_the_volume_mode() {
    let s = Scratch::new("masked");
    let v = s.volume(0o700);
    v.write_file("/", "f", b"x", WriteMode::Truncate)
        .expect("w");
    v.mkdir("/", "d").expect("mkdir");
    let fmode = v.stat("/", "f").expect("stat").mode;
    let dmode = v.stat("/", "d").expect("stat").mode;
    assert_eq!(fmode & !0o600, 0, "file mode {fmode:o}");
    assert_eq!(dmode & !0o700, 0, "dir mode {dmode:o}");
    let open = s.volume(0o755);
    open.write_file("/", "g", b"x", WriteMode::Truncate)
        .expect("w");
    assert_eq!(
        open.stat("/", "g").expect("stat").mode & 0o111,
        0,
        "files are not executable"
    );
}

// ---- open files --------------------------------------------------------

#[test]
fn open_file_read_seek_stat_close() {
    let s = Scratch::new("file");
    let v = s.volume(0o755);
    v.write_file("/", "f.txt", b"abcdefghij", WriteMode::Truncate)
        .expect("w");
    let mut f = v.open_file("/", "f.txt", OpenMode::Read).expect("open r");
    assert_eq!(f.path(), "f.txt");
    assert_eq!(f.read(4).expect("read"), Some(b"abcd".to_vec()));
    assert_eq!(f.read(0).expect("read 0"), Some(Vec::new()));
    assert_eq!(f.seek(Whence::Cur, 2).expect("cur"), 6);
    assert_eq!(f.read(100).expect("rest"), Some(b"ghij".to_vec()));
    assert_eq!(f.read(100).expect("eof"), None);
    assert_eq!(f.seek(Whence::End, -3).expect("end"), 7);
    assert_eq!(f.read(1).expect("h"), Some(b"h".to_vec()));
    assert_eq!(f.seek(Whence::Set, 0).expect("set"), 0);
    assert_eq!(kind(f.seek(Whence::Set, -1)), ErrorKind::Invalid);
    assert_eq!(kind(f.seek(Whence::Cur, -100)), ErrorKind::Invalid);
    assert_eq!(kind(Whence::parse("middle")), ErrorKind::Invalid);
    assert_eq!(
        kind(f.write(b"x")),
        ErrorKind::Invalid,
        "not open for writing"
    );
    let st = f.stat().expect("stat");
    assert_eq!((st.name.as_str(), st.size, st.is_dir), ("f.txt", 10, false));
    f.sync().expect("sync");
    f.close();
    f.close();
    assert!(f.is_closed());
    let err = f.read(1).expect_err("closed");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Internal, "file is closed")
    );
    assert_eq!(kind(f.write(b"x")), ErrorKind::Internal);
    assert_eq!(kind(f.seek(Whence::Set, 0)), ErrorKind::Internal);
    assert_eq!(kind(f.stat()), ErrorKind::Internal);
    assert_eq!(kind(f.sync()), ErrorKind::Internal);
}

#[test]
fn open_file_write_modes() {
    let s = Scratch::new("filew");
    let v = s.volume(0o755);
    let mut w = v.open_file("/", "w.txt", OpenMode::Write).expect("w");
    w.write(b"one").expect("write");
    assert_eq!(kind(w.write(b"")), ErrorKind::Invalid);
    assert_eq!(kind(w.read(1)), ErrorKind::Invalid, "not open for reading");
    w.close();
    let mut a = v.open_file("/", "w.txt", OpenMode::Append).expect("a");
    a.write(b"two").expect("append");
    a.close();
    assert_eq!(v.read_file("/", "w.txt", 100).expect("read"), b"onetwo");
    assert_eq!(
        kind(v.open_file("/", "w.txt", OpenMode::Exclusive)),
        ErrorKind::AlreadyExists
    );
    let mut x = v.open_file("/", "x.txt", OpenMode::Exclusive).expect("wx");
    x.write(b"x").expect("write");
    drop(x);
    let w2 = v
        .open_file("/", "w.txt", OpenMode::Write)
        .expect("w truncates");
    drop(w2);
    assert_eq!(v.read_file("/", "w.txt", 100).expect("read"), b"");
    assert_eq!(
        kind(v.open_file("/", "missing", OpenMode::Read)),
        ErrorKind::NotFound
    );
    v.mkdir("/", "d").expect("mkdir");
    assert_eq!(
        kind(v.open_file("/", "d", OpenMode::Read)),
        ErrorKind::Invalid
    );
    assert_eq!(kind(OpenMode::parse("rw")), ErrorKind::Invalid);
    assert_eq!(kind(WriteMode::parse("r")), ErrorKind::Invalid);
}

/// What a copy out of a file may read: the bytes after its position, as
/// the file is now; only for a file open for reading.
#[test]
fn remaining_counts_from_the_position_to_the_end() {
    let s = Scratch::new("remaining");
    let v = s.volume(0o755);
    v.write_file("/", "f", b"0123456789", WriteMode::Truncate)
        .expect("w");
    let mut f = v.open_file("/", "f", OpenMode::Read).expect("open");
    assert_eq!(f.remaining().expect("remaining"), 10);
    f.read(4).expect("read");
    assert_eq!(f.remaining().expect("after a read"), 6);
    v.write_file("/", "f", b"abc", WriteMode::Append)
        .expect("a");
    assert_eq!(f.remaining().expect("grown"), 9);
    f.seek(Whence::End, 5).expect("past the end");
    assert_eq!(f.remaining().expect("past the end"), 0);
    let mut w = v.open_file("/", "f", OpenMode::Append).expect("open a");
    let err = w.remaining().expect_err("write-only");
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Invalid, "file 'f' is not open for reading")
    );
    f.close();
    assert_eq!(kind(f.remaining()), ErrorKind::Internal);
}

#[test]
fn file_read_is_bounded_per_call() {
    let s = Scratch::new("chunk");
    let v = s.volume(0o755);
    let data = vec![7u8; MAX_READ_CHUNK * 2 + 5];
    v.write_file("/", "big", &data, WriteMode::Truncate)
        .expect("w");
    let mut f = v.open_file("/", "big", OpenMode::Read).expect("open");
    assert_eq!(
        f.read(usize::MAX).expect("read").expect("data").len(),
        MAX_READ_CHUNK
    );
    assert_eq!(
        f.read(usize::MAX).expect("read").expect("data").len(),
        MAX_READ_CHUNK
    );
    assert_eq!(f.read(usize::MAX).expect("read").expect("data").len(), 5);
    assert_eq!(f.read(usize::MAX).expect("eof"), None);
}

// ---- metadata ----------------------------------------------------------

#[test]
fn exists_is_dir_and_stat() {
    let s = Scratch::new("meta");
    let v = s.volume(0o755);
    v.write_file("/", "f", b"12345", WriteMode::Truncate)
        .expect("w");
    v.mkdir("/", "d").expect("mkdir");
    assert!(v.exists("/", "f").expect("exists"));
    assert!(v.exists("/", "/").expect("root exists"));
    assert!(!v.exists("/", "nope").expect("absent is false"));
    assert!(!v.exists("/", "f/below").expect("below a file is absent"));
    assert!(v.is_dir("/", "d").expect("is_dir"));
    assert!(!v.is_dir("/", "f").expect("is_dir"));
    assert_eq!(kind(v.is_dir("/", "nope")), ErrorKind::NotFound);
    let st = v.stat("/d", "../f").expect("stat");
    assert_eq!(
        (st.name.as_str(), st.size, st.is_dir, st.type_name()),
        ("f", 5, false, "file")
    );
    assert!(st.modified > 1_600_000_000, "modified {}", st.modified);
    let root = v.stat("/", "/").expect("stat root");
    assert!(root.is_dir && root.name == "/");
    assert_eq!(kind(v.stat("/", "nope")), ErrorKind::NotFound);
    let Value::Map(fields) = v.stat("/", "d").expect("stat").to_value() else {
        panic!("stat is a map");
    };
    let keys: Vec<_> = fields.iter().filter_map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["name", "size", "mode", "modified", "is_dir", "type"]);
    assert!(fields.contains(&(Value::str("type"), Value::str("directory"))));
    assert!(fields.contains(&(Value::str("is_dir"), Value::Bool(true))));
}

// ---- directories -------------------------------------------------------

#[test]
fn mkdir_remove_and_read_dir() {
    let s = Scratch::new("dirs");
    let v = s.volume(0o755);
    v.mkdir("/", "d").expect("mkdir");
    assert_eq!(kind(v.mkdir("/", "d")), ErrorKind::AlreadyExists);
    assert_eq!(kind(v.mkdir("/", "/")), ErrorKind::AlreadyExists);
    assert_eq!(
        kind(v.mkdir("/", "x/y")),
        ErrorKind::NotFound,
        "one level only"
    );
    v.mkdir("/d", "sub").expect("relative mkdir");
    for name in ["b.txt", "a.txt", "c.txt"] {
        v.write_file("/d", name, b"x", WriteMode::Truncate)
            .expect("w");
    }
    let listing = v.read_dir("/", "d", 100).expect("readdir");
    let expected = [
        ("a.txt", false),
        ("b.txt", false),
        ("c.txt", false),
        ("sub", true),
    ];
    let got: Vec<_> = listing.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    assert_eq!(got, expected);
    let err = v.read_dir("/", "d", 3).expect_err("over the limit");
    assert_eq!((err.kind, limit_of(&err)), (ErrorKind::Invalid, Some(3)));
    assert_eq!(v.read_dir("/", "d", usize::MAX).expect("capped").len(), 4);
    assert_eq!(kind(v.read_dir("/", "d/a.txt", 10)), ErrorKind::Invalid);
    assert_eq!(kind(v.read_dir("/", "nope", 10)), ErrorKind::NotFound);
    assert_eq!(kind(v.remove("/", "d")), ErrorKind::Invalid, "not empty");
    assert_eq!(kind(v.remove("/", "/")), ErrorKind::Invalid, "the root");
    assert_eq!(kind(v.remove("/", "nope")), ErrorKind::NotFound);
    v.remove("/d", "a.txt").expect("remove file");
    v.remove("/", "d/sub").expect("remove empty dir");
    assert!(!v.exists("/", "d/a.txt").expect("gone"));
    assert!(!v.exists("/", "d/sub").expect("gone"));
}

#[test]
fn read_dir_over_the_limit_is_refused() {
    let s = Scratch::new("bigdir");
    for i in 0..50 {
        std::fs::write(s.root().join(format!("f{i:03}")), b"").expect("host file");
    }
    let v = s.volume(0o755);
    assert_eq!(v.read_dir("/", "/", 50).expect("exactly").len(), 50);
    assert_eq!(
        limit_of(&v.read_dir("/", "/", 49).expect_err("over")),
        Some(49)
    );
}

#[test]
fn resolve_dir_gives_the_working_directory() {
    let s = Scratch::new("chdir");
    let v = s.volume(0o755);
    v.mkdir("/", "a").expect("mkdir");
    v.mkdir("/a", "b").expect("mkdir");
    v.write_file("/", "a/f", b"x", WriteMode::Truncate)
        .expect("w");
    assert_eq!(v.resolve_dir("/", "a/./b/").expect("chdir"), "/a/b");
    assert_eq!(v.resolve_dir("/a/b", "..").expect("chdir"), "/a");
    assert_eq!(v.resolve_dir("/a", "/").expect("chdir"), "/");
    let cwd = v.resolve_dir("/", "a").expect("chdir");
    assert_eq!(v.read_file(&cwd, "f", 10).expect("relative read"), b"x");
    assert_eq!(kind(v.resolve_dir("/", "a/f")), ErrorKind::Invalid);
    assert_eq!(kind(v.resolve_dir("/", "nope")), ErrorKind::NotFound);
    assert_eq!(kind(v.resolve_dir("/a", "../..")), ErrorKind::Invalid);
}

// ---- the volume mode ---------------------------------------------------

#[test]
fn read_only_volume_refuses_writes() {
    let s = Scratch::new("ro");
    std::fs::write(s.root().join("f"), b"data").expect("host file");
    std::fs::create_dir(s.root().join("d")).expect("host dir");
    let v = s.volume(parse_mode("0555").expect("mode"));
    assert!(v.readable() && !v.writable());
    let denied = |r: Result<(), ProcError>| {
        let err = r.expect_err("write on a read-only volume");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("app:vol"), "{}", err.message);
    };
    denied(v.write_file("/", "f", b"x", WriteMode::Truncate));
    denied(v.write_file("/", "new", b"x", WriteMode::Exclusive));
    denied(v.mkdir("/", "e"));
    denied(v.remove("/", "f"));
    denied(v.remove("/", "d"));
    for mode in [OpenMode::Write, OpenMode::Append, OpenMode::Exclusive] {
        assert_eq!(
            kind(v.open_file("/", "f", mode)),
            ErrorKind::PermissionDenied
        );
    }
    assert_eq!(
        std::fs::read(s.root().join("f")).expect("host"),
        b"data",
        "not truncated"
    );
    assert!(!s.root().join("new").exists() && !s.root().join("e").exists());
    assert_eq!(v.read_file("/", "f", 10).expect("reads work"), b"data");
    assert!(v.exists("/", "d").expect("exists"));
    v.open_file("/", "f", OpenMode::Read).expect("open r");
}

#[test]
fn write_only_volume_refuses_reads() {
    let s = Scratch::new("wo");
    std::fs::write(s.root().join("f"), b"data").expect("host file");
    let v = s.volume(0o200);
    v.write_file("/", "g", b"x", WriteMode::Truncate)
        .expect("writes work");
    assert_eq!(kind(v.read_file("/", "f", 10)), ErrorKind::PermissionDenied);
    assert_eq!(kind(v.exists("/", "f")), ErrorKind::PermissionDenied);
    assert_eq!(
        kind(v.exists("/", "nope")),
        ErrorKind::PermissionDenied,
        "no existence leak"
    );
    assert_eq!(kind(v.is_dir("/", "f")), ErrorKind::PermissionDenied);
    assert_eq!(kind(v.stat("/", "f")), ErrorKind::PermissionDenied);
    assert_eq!(kind(v.read_dir("/", "/", 10)), ErrorKind::PermissionDenied);
    assert_eq!(kind(v.resolve_dir("/", "/")), ErrorKind::PermissionDenied);
    assert_eq!(
        kind(v.open_file("/", "f", OpenMode::Read)),
        ErrorKind::PermissionDenied
    );
    // The shape of the arguments is checked before the mode.
    assert_eq!(kind(v.read_file("/", "../x", 10)), ErrorKind::Invalid);
}

// ---- escapes -----------------------------------------------------------

#[test]
fn host_paths_are_volume_paths() {
    let s = Scratch::new("hostpath");
    let v = s.volume(0o755);
    let secret = s.outside().join("secret.txt");
    let secret = secret.to_str().expect("utf-8 temp dir");
    assert_eq!(
        kind(v.read_file("/", "/etc/passwd", 1 << 20)),
        ErrorKind::NotFound
    );
    assert_eq!(kind(v.read_file("/", secret, 1 << 20)), ErrorKind::NotFound);
    assert!(!v.exists("/", secret).expect("exists"));
    let err = v
        .write_file("/", secret, b"pwned", WriteMode::Truncate)
        .expect_err("write");
    assert_eq!(
        err.kind,
        ErrorKind::NotFound,
        "the volume has no such parent"
    );
    assert_eq!(
        kind(v.read_file("/", "../outside/secret.txt", 100)),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(v.read_file("/", "/../outside/secret.txt", 100)),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(v.write_file("/", "a/../../outside/x", b"x", WriteMode::Truncate)),
        ErrorKind::Invalid
    );
    // Made inside the volume, the same host path is just a nested volume path.
    let inside = s.root().join(secret.trim_start_matches('/'));
    std::fs::create_dir_all(inside.parent().expect("parent")).expect("nested dirs");
    v.write_file("/", secret, b"inside", WriteMode::Truncate)
        .expect("nested write");
    assert_eq!(std::fs::read(&inside).expect("host"), b"inside");
    s.assert_outside_untouched();
}

/// Every call through `p` fails with `PERMISSION_DENIED`, and nothing
/// outside changes.
fn assert_all_refused(s: &Scratch, v: &Volume, p: &str) {
    let pd = ErrorKind::PermissionDenied;
    let err = v.read_file("/", p, 1 << 20).expect_err(p);
    assert_eq!(err.kind, pd, "read {p}: {}", err.message);
    s.assert_no_host_path(&err);
    assert_eq!(
        kind(v.write_file("/", p, b"pwned", WriteMode::Truncate)),
        pd,
        "write {p}"
    );
    assert_eq!(
        kind(v.write_file("/", p, b"pwned", WriteMode::Append)),
        pd,
        "append {p}"
    );
    // `wx` does not follow a link in the last place: the name exists.
    let wx = kind(v.write_file("/", p, b"pwned", WriteMode::Exclusive));
    assert!(wx == pd || wx == ErrorKind::AlreadyExists, "wx {p}: {wx:?}");
    for mode in [OpenMode::Read, OpenMode::Write, OpenMode::Append] {
        assert_eq!(kind(v.open_file("/", p, mode)), pd, "open {mode:?} {p}");
    }
    let wx = kind(v.open_file("/", p, OpenMode::Exclusive));
    assert!(
        wx == pd || wx == ErrorKind::AlreadyExists,
        "open wx {p}: {wx:?}"
    );
    assert_eq!(kind(v.exists("/", p)), pd, "exists {p}");
    assert_eq!(kind(v.is_dir("/", p)), pd, "isdir {p}");
    assert_eq!(kind(v.stat("/", p)), pd, "stat {p}");
    assert_eq!(kind(v.read_dir("/", p, 100)), pd, "readdir {p}");
    assert_eq!(kind(v.resolve_dir("/", p)), pd, "chdir {p}");
    s.assert_outside_untouched();
}

#[test]
fn symlinks_leading_out_are_refused() {
    let s = Scratch::new("symout");
    let root = s.root();
    symlink("/etc", root.join("etc")).expect("link");
    symlink("../outside", root.join("out")).expect("link");
    symlink(s.outside(), root.join("abs_out")).expect("link");
    symlink("../outside/secret.txt", root.join("secret")).expect("link");
    symlink("../outside/new.txt", root.join("dangling")).expect("link");
    symlink(root.join("inside.txt"), root.join("abs_in")).expect("link");
    std::fs::write(root.join("inside.txt"), b"in").expect("host file");
    let v = s.volume(0o755);
    for p in [
        "etc/passwd",
        "etc",
        "out",
        "out/secret.txt",
        "abs_out/secret.txt",
        "secret",
    ] {
        assert_all_refused(&s, &v, p);
    }
    assert_all_refused(&s, &v, "dangling");
    assert!(
        !s.outside().join("new.txt").exists(),
        "write through a dangling link"
    );
    // An absolute link is refused even when it names a place inside.
    assert_eq!(
        kind(v.read_file("/", "abs_in", 10)),
        ErrorKind::PermissionDenied
    );
    let pd = ErrorKind::PermissionDenied;
    assert_eq!(kind(v.mkdir("/", "out/newdir")), pd);
    assert_eq!(kind(v.remove("/", "out/secret.txt")), pd);
    assert_eq!(kind(v.read_dir("/", "out", 10)), pd);
    // Listing the root shows the links without following them out.
    let listing = v.read_dir("/", "/", 100).expect("readdir");
    assert!(listing.contains(&("out".to_string(), false)), "{listing:?}");
    // Removing a link removes only the link.
    v.remove("/", "out").expect("remove the link");
    v.remove("/", "secret").expect("remove the link");
    assert!(!root.join("out").exists());
    s.assert_outside_untouched();
}

#[test]
fn symlinks_inside_are_followed() {
    let s = Scratch::new("symin");
    let root = s.root();
    std::fs::create_dir_all(root.join("c/sub")).expect("dirs");
    std::fs::write(root.join("c/file.txt"), b"target").expect("file");
    symlink("c/file.txt", root.join("b")).expect("link");
    symlink("b", root.join("a")).expect("chain");
    symlink("../file.txt", root.join("c/sub/up")).expect("dotdot inside");
    symlink("../../../outside/secret.txt", root.join("c/sub/up_out")).expect("dotdot out");
    symlink("c", root.join("cdir")).expect("dir link");
    symlink("a", root.join("chain_out_1")).expect("link");
    symlink("out", root.join("chain_out_2")).expect("link");
    symlink("../outside", root.join("out")).expect("link");
    let v = s.volume(0o755);
    assert_eq!(v.read_file("/", "a", 10).expect("chain"), b"target");
    assert_eq!(v.read_file("/", "c/sub/up", 10).expect("dotdot"), b"target");
    assert_eq!(
        v.read_file("/", "cdir/file.txt", 10).expect("dir link"),
        b"target"
    );
    v.write_file("/", "a", b"changed", WriteMode::Truncate)
        .expect("write through chain");
    assert_eq!(
        std::fs::read(root.join("c/file.txt")).expect("host"),
        b"changed"
    );
    assert!(v.is_dir("/", "cdir").expect("isdir"));
    let listing = v.read_dir("/", "/", 100).expect("readdir");
    assert!(listing.contains(&("cdir".to_string(), true)), "{listing:?}");
    assert_eq!(v.resolve_dir("/", "cdir").expect("chdir"), "/cdir");
    assert_all_refused(&s, &v, "c/sub/up_out");
    assert_all_refused(&s, &v, "chain_out_2/secret.txt");
}

#[test]
fn symlink_loops_fail_without_hanging() {
    let s = Scratch::new("loop");
    let root = s.root();
    symlink("loop2", root.join("loop1")).expect("link");
    symlink("loop1", root.join("loop2")).expect("link");
    symlink("self", root.join("self")).expect("link");
    symlink(".", root.join("dot")).expect("link");
    let v = s.volume(0o755);
    let vol = Arc::clone(&v);
    let errs = bounded(move || {
        [
            vol.read_file("/", "loop1", 10).map(|_| ()),
            vol.read_file("/", "self", 10).map(|_| ()),
            vol.write_file("/", "loop2", b"x", WriteMode::Truncate),
            vol.stat("/", "loop1/x").map(|_| ()),
            vol.exists("/", "self").map(|_| ()),
            vol.read_dir("/", "self", 10).map(|_| ()),
        ]
    });
    for r in errs {
        let err = r.expect_err("a loop resolves to nothing");
        assert_ne!(err.kind, ErrorKind::Internal, "{}", err.message);
    }
    // A link to "." repeated is a long path, not a loop: still bounded.
    let deep = "dot/".repeat(MAX_PATH_DEPTH - 1) + "x";
    let vol = Arc::clone(&v);
    let r = bounded(move || vol.read_file("/", &deep, 10));
    assert!(r.is_err());
    s.assert_outside_untouched();
}

#[test]
fn a_directory_swapped_for_a_link_is_refused() {
    let s = Scratch::new("swap");
    let root = s.root();
    let v = s.volume(0o755);
    v.mkdir("/", "d").expect("mkdir");
    v.write_file("/", "d/secret.txt", b"mine", WriteMode::Truncate)
        .expect("w");
    let cwd = v.resolve_dir("/", "d").expect("chdir");
    assert_eq!(
        v.read_file(&cwd, "secret.txt", 100).expect("before"),
        b"mine"
    );
    let mut open = v
        .open_file("/", "d/secret.txt", OpenMode::Read)
        .expect("open before");
    // The host (or another tenant's race) replaces d with a link out.
    std::fs::rename(root.join("d"), root.join("d_old")).expect("rename");
    symlink(s.outside(), root.join("d")).expect("swap");
    assert_all_refused(&s, &v, "d/secret.txt");
    assert_eq!(
        kind(v.read_file(&cwd, "secret.txt", 100)),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(v.read_dir(&cwd, ".", 100)),
        ErrorKind::PermissionDenied
    );
    assert_eq!(kind(v.mkdir(&cwd, "x")), ErrorKind::PermissionDenied);
    assert_eq!(
        kind(v.remove(&cwd, "secret.txt")),
        ErrorKind::PermissionDenied
    );
    // A file opened before the swap is still the file it was.
    assert_eq!(open.read(100).expect("read"), Some(b"mine".to_vec()));
    s.assert_outside_untouched();
}

#[test]
fn racing_renames_never_reach_outside() {
    let s = Scratch::new("race");
    let root = s.root();
    std::fs::create_dir(root.join("flip")).expect("dir");
    std::fs::write(root.join("flip/secret.txt"), b"inside").expect("file");
    let v = s.volume(0o755);
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (root, outside, stop) = (root.clone(), s.outside(), Arc::clone(&stop));
        std::thread::spawn(move || flip(&root, &outside, &stop))
    };
    // Until both states were seen (and at least 3000 tries), within 20 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut tries, mut seen_inside, mut seen_refused) = (0, 0, 0);
    while (tries < 3000 || seen_inside == 0 || seen_refused == 0)
        && std::time::Instant::now() < deadline
    {
        tries += 1;
        match v.read_file("/", "flip/secret.txt", 1 << 10) {
            Ok(data) => {
                assert_eq!(data, b"inside", "read the outside file through a race");
                seen_inside += 1;
            }
            Err(e) if e.kind == ErrorKind::PermissionDenied => seen_refused += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message),
        }
        let _ = v.write_file("/", "flip/new.txt", b"x", WriteMode::Exclusive);
        let _ = v.remove("/", "flip/new.txt");
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = flipper.join().expect("flipper");
    assert!(
        seen_inside > 0 && seen_refused > 0,
        "both states raced ({rounds} flips, {tries} tries, {seen_inside} inside, {seen_refused} refused)"
    );
    s.assert_outside_untouched();
}

/// Swaps `root/flip` between the real directory and a link to `outside`
/// until `stop`; the number of swaps.
fn flip(root: &Path, outside: &Path, stop: &AtomicBool) -> usize {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) && rounds < 1_000_000 {
        std::fs::rename(root.join("flip"), root.join("flip_real")).expect("away");
        symlink(outside, root.join("flip")).expect("link");
        std::fs::remove_file(root.join("flip")).expect("unlink");
        std::fs::rename(root.join("flip_real"), root.join("flip")).expect("back");
        rounds += 1;
    }
    rounds
}

#[test]
fn hard_links_made_by_the_host_are_inside_by_definition() {
    // A hard link is the same file under a second name: one the host made
    // inside the root is part of the volume. The volume itself has no call
    // that creates hard or symbolic links, so a tenant cannot make one.
    let s = Scratch::new("hardlink");
    std::fs::hard_link(s.outside().join("secret.txt"), s.root().join("hl")).expect("hard link");
    let v = s.volume(0o755);
    assert_eq!(v.read_file("/", "hl", 100).expect("read"), SENTINEL);
    v.remove("/", "hl").expect("remove the name");
    s.assert_outside_untouched();
}

#[test]
fn fifos_do_not_block() {
    let s = Scratch::new("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(s.root().join("pipe"))
        .status()
        .is_ok_and(|st| st.success());
    if !made {
        eprintln!("mkfifo unavailable; skipping");
        return;
    }
    let v = s.volume(0o755);
    let vol = Arc::clone(&v);
    let (r, w, o) = bounded(move || {
        (
            vol.read_file("/", "pipe", 10).map(|_| ()),
            vol.write_file("/", "pipe", b"x", WriteMode::Append),
            vol.open_file("/", "pipe", OpenMode::Read).map(|_| ()),
        )
    });
    assert_eq!(kind(r), ErrorKind::Invalid);
    assert!(w.is_err(), "no reader, no regular file");
    assert_eq!(kind(o), ErrorKind::Invalid);
}

#[test]
fn the_permission_bits_of_the_root_are_the_hosts_business() {
    // The volume mode is Warren's check; the host's own bits still apply
    // underneath (as root they do not, so only the mode check is asserted).
    let s = Scratch::new("hostbits");
    std::fs::set_permissions(s.root(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let v = s.volume(0o555);
    assert_eq!(kind(v.mkdir("/", "x")), ErrorKind::PermissionDenied);
    assert!(!s.root().join("x").exists());
}
