//! Any text as an application's `_index.yaml` loads or is refused with
//! errors that name the file; the loader never panics.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fn scratch_app() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-fuzz-config-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    // A script and a folder an index may name.
    let _ = std::fs::write(dir.join("main.lua"), "return function() end");
    let _ = std::fs::create_dir_all(dir.join("data"));
    dir
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static DIR: PathBuf = scratch_app();
    }
    DIR.with(|dir| {
        let index = dir.join("_index.yaml");
        if std::fs::write(&index, data).is_err() {
            return;
        }
        if let Err(problems) = warren_config::App::load(dir, &["json", "time"]) {
            assert!(!problems.is_empty(), "a refusal says why");
            for p in &problems {
                assert!(!p.to_string().is_empty());
            }
        }
    });
});
