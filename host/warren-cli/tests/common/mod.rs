//! Helpers shared by the `warren` binary's tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (examples are addressed relative to it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `warren` from the repository root and waits for it.
pub fn warren(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .current_dir(repo())
        .env("RUST_LOG", "info")
        .env(
            "WARREN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        )
        .output()
        .expect("warren runs")
}

/// What it wrote to stderr (errors and the log).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `files` into a fresh folder named `name` and returns it.
pub fn app(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    dir
}
