//! A Wippy program that uses fs, env, funcs, the logger and the small data
//! modules exactly as Wippy's documentation shows them
//! (`tests/apps/wippy-io`), end to end through the `warren` binary: it must
//! pass `warren check`, and `warren run -x app:main` must print the summary
//! below and leave its files in the volume, a temporary directory named by
//! the OS variable `WIPPY_IO_DATA` (never the application folder).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{app, repo, stderr, warren};

/// The application, relative to the repository root.
const APP: &str = "tests/apps/wippy-io";

/// What the program prints. The hashes are those of the texts it writes
/// and of the inputs in Wippy's examples (checked against Python's
/// hashlib, hmac and uuid).
const EXPECTED: &str = "\
env mode=production port=9090 log_level=info api=https://api.example.com \
greeting=hello->hello from memory key=20 readonly=PermissionDenied \
vars=APP_MODE,GREETING,PORT,PUBLIC_API_HOST,app:signing_key
fs root=archive/,logs/,reports/ items=apple+pear+plum bytes=30/30 type=file dir=true \
mkdir_again=AlreadyExists exclusive=AlreadyExists lock=removed log=2
funcs digest=ad55973158d97849b638b54b89e131e2f4843c5c16135cf6a01d782b5a1e2b81 size=30 \
head=aWQsbmFt signed=req-42:13ca42ef98d2ed68 summary=45 ns=1/RFC4122 \
v5=5:1f70cc9da4b15e16844a32742876cc95 log=18 complete=true missing=true/NotFound/Internal \
invalid=Invalid
base64 SGVsbG8sIFdvcmxkIQ== Hello, World! bad=Invalid
hash sha256=3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7 raw=32 \
md5=8d777f385d3dfec8815d20f7496026dc sha1=a17c9aaa61e80a1bf71d0d850af4e5baa9800bbd \
hmac=8b5f48702995c1598c573db1e21866a9b825d4a794d169d7060a03605796360b fnv32=1959470013 \
pbkdf2=xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=
uuid v4=4/RFC4122/true v7=7/true v1=1 v3=urn:uuid:44aa5df1-61a5-3b37-a38f-ff55c5dc4250
crypto bytes=32 string=true uuid=4 hmac=true pbkdf2=xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o= \
pbkdf2_512=r+bFUweFtsxrHGRTOEcxvQ==
done
";

/// The CSV the program writes, then copies.
const ITEMS: &str = "id,name\n1,apple\n2,pear\n3,plum\n";

/// `warren <args>` run in `dir`, with the volume in `data` and the OS
/// environment the program's variables read fixed.
fn warren_in(dir: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env(
            "WARREN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        )
        .env("WIPPY_IO_DATA", data)
        .env("PORT", "9090")
        .env_remove("LOG_LEVEL")
        .env_remove("GREETING")
        .env_remove("APP_MODE")
        .env_remove("PUBLIC_API_HOST")
        .output()
        .expect("warren runs")
}

/// The names in folder `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_wippy_program_using_fs_env_funcs_and_the_data_modules_runs_unchanged() {
    let app_dir = repo().join(APP);
    let app_path = app_dir.display().to_string();
    // Warren runs in a scratch folder of its own; the volume is a folder
    // inside it that does not exist yet (auto_init creates it).
    let work = app(
        "wippy-io",
        &[("README", "scratch folder of the wippy-io test\n")],
    );
    let data = work.join("data");

    let out = warren_in(&work, &data, &["check", &app_path]);
    assert_eq!(out.status.code(), Some(0), "check:\n{}", stderr(&out));
    assert!(!data.exists(), "warren check created the volume");

    let out = warren_in(&work, &data, &["run", &app_path, "-x", "app:main"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{err}"
    );
    assert_eq!(stdout, EXPECTED, "stderr:\n{err}");

    // The logger's lines, with their fields, went to the log on stderr.
    for needle in [
        "starting",
        "request_id=req-42",
        "logger=wippy-io",
        "report stored",
        "bytes=30",
        "copied=true",
        "files=3",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // The files are in the volume's directory, and only there.
    let summary: serde_json::Value =
        serde_json::from_str(&read(&data.join("reports/summary.json"))).expect("summary is JSON");
    assert_eq!(
        summary,
        serde_json::json!({"mode": "production", "port": "9090", "items": 3})
    );
    assert_eq!(read(&data.join("reports/items.csv")), ITEMS);
    assert_eq!(read(&data.join("archive/items.csv")), ITEMS);
    assert_eq!(read(&data.join("logs/app.log")), "configured\nstored\n");
    assert!(!data.join("lock.pid").exists(), "the lock was not removed");
    assert_eq!(names(&data), ["archive", "logs", "reports"]);
    assert_eq!(
        names(&work),
        ["README", "data"],
        "stray files beside the volume"
    );
    assert_eq!(
        names(&app_dir),
        ["_index.yaml", "checksum.lua", "main.lua", "tools"],
        "the program wrote into its application folder"
    );

    // Without WIPPY_IO_DATA the volume has no root: a load error, so the
    // program can never write into the application folder instead.
    let out = warren(&["check", APP]);
    let err = stderr(&out);
    assert_ne!(
        out.status.code(),
        Some(0),
        "check without WIPPY_IO_DATA:\n{err}"
    );
    assert!(err.contains("WIPPY_IO_DATA"), "{err}");
}
