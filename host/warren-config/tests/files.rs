//! The files an application folder names, when they are not what they
//! seem: a source that is `/dev/zero` or a FIFO, a file larger than its
//! bound, folders that loop back through symlinks. Each is refused with
//! the file, entry and key named, without reading without end or waiting
//! for a writer.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::{index, write_and_load};
use warren_config::{
    App, ConfigError, MAX_FOLDER_DEPTH, MAX_FOLDERS, MAX_INDEX_BYTES, MAX_SOURCE_BYTES,
};

const GROUP: &str = "warren-config-files";

fn main_entry() -> String {
    index(
        "app",
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    method: main\n",
    )
}

/// An app whose `main.lua` is replaced by `make(path)`, loaded again.
fn with_source(name: &str, make: impl FnOnce(&Path)) -> Vec<ConfigError> {
    let index = main_entry();
    let (dir, first) = write_and_load(
        GROUP,
        name,
        &[("_index.yaml", &index), ("main.lua", "return {}")],
        &[],
    );
    assert!(first.is_ok(), "{:?}", first.err());
    let source = dir.join("main.lua");
    std::fs::remove_file(&source).expect("remove");
    make(&source);
    App::load(&dir, &[]).expect_err("the source must be refused")
}

fn text(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_source_that_is_a_device_is_refused_by_its_kind() {
    let errors = with_source("dev-zero", |p| symlink("/dev/zero", p).expect("symlink"));
    let text = text(&errors);
    for fragment in [
        "entry 'app:main'",
        "key 'source'",
        "main.lua",
        "character device",
    ] {
        assert!(text.contains(fragment), "{fragment:?} missing from {text}");
    }
}

#[test]
fn a_source_that_is_a_fifo_is_refused_without_waiting_for_a_writer() {
    let mut made = false;
    let errors = with_source("fifo", |p| made = mkfifo(p));
    if made {
        assert!(text(&errors).contains("FIFO"), "{}", text(&errors));
    }
}

#[test]
fn a_source_larger_than_its_bound_is_refused_before_it_is_read() {
    let errors = with_source("sparse", |p| {
        let f = std::fs::File::create(p).expect("create");
        f.set_len(MAX_SOURCE_BYTES as u64 + 1).expect("set_len");
    });
    let text = text(&errors);
    assert!(
        text.contains(&format!("more than the {MAX_SOURCE_BYTES} bytes")),
        "{text}"
    );
    assert!(text.contains("key 'source'"), "{text}");
}

#[test]
fn an_index_file_larger_than_its_bound_is_refused() {
    let (dir, first) = write_and_load(GROUP, "big-index", &[("_index.yaml", "x")], &[]);
    assert!(first.is_err());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("_index.yaml"))
        .expect("open");
    f.set_len(MAX_INDEX_BYTES as u64 + 1).expect("set_len");
    let text = text(&App::load(&dir, &[]).expect_err("refused"));
    assert!(text.contains("_index.yaml: cannot read"), "{text}");
    assert!(
        text.contains(&format!("more than the {MAX_INDEX_BYTES} bytes")),
        "{text}"
    );
}

/// An app with `main.lua` and the given symlinks (name, target) in it,
/// loaded on a thread given 20 s (a walk that loops fails, not hangs).
fn with_links(name: &str, links: &[(&str, String)]) -> Result<App, Vec<ConfigError>> {
    let index = main_entry();
    let (dir, _) = write_and_load(
        GROUP,
        name,
        &[
            ("_index.yaml", &index),
            ("main.lua", "return { main = function() end }"),
        ],
        &[],
    );
    for (link, target) in links {
        let at = dir.join(link);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        symlink(target, at).expect("symlink");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(App::load(&dir, &[])));
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the load must finish")
}

#[test]
fn folders_that_loop_through_symlinks_are_read_once() {
    // Two links to the folder itself and one back up from below: the
    // walk used to visit 2^40 paths. Read twice, the entry would be a
    // duplicate.
    let links = [("a", "."), ("b", "."), ("c/up", "..")].map(|(l, t)| (l, t.to_owned()));
    let app = with_links("loop-self", &links).unwrap_or_else(|e| panic!("{}", text(&e)));
    assert_eq!(app.lua_entries().count(), 1);
}

#[test]
fn a_symlinked_folder_reached_twice_contributes_its_entries_once() {
    let (dir, _) = write_and_load(
        GROUP,
        "shared-lib",
        &[
            (
                "lib/_index.yaml",
                &index(
                    "lib",
                    "  - name: util\n    kind: library.lua\n    source: file://util.lua\n",
                ),
            ),
            ("lib/util.lua", "return {}"),
        ],
        &[],
    );
    let lib = dir.join("lib").to_str().expect("utf-8").to_owned();
    let app = with_links("shared-app", &[("one", lib.clone()), ("two", lib)])
        .unwrap_or_else(|e| panic!("{}", text(&e)));
    assert_eq!(app.libraries().count(), 1);
}

#[test]
fn folders_deeper_than_the_bound_are_refused_with_the_folder_named() {
    let deep: String = (0..=MAX_FOLDER_DEPTH).map(|i| format!("d{i}/")).collect();
    let index = main_entry();
    let (_, app) = write_and_load(
        GROUP,
        "deep",
        &[
            ("_index.yaml", &index),
            ("main.lua", "return {}"),
            (&format!("{deep}note.txt"), "x"),
        ],
        &[],
    );
    let text = text(&app.expect_err("too deep"));
    assert!(
        text.contains(&format!("more than {MAX_FOLDER_DEPTH} folders deep")),
        "{text}"
    );
    assert!(text.contains(&format!("d{MAX_FOLDER_DEPTH}")), "{text}");
}

#[test]
fn a_link_to_a_large_tree_is_refused_past_the_folder_bound() {
    // A linked folder is read (a shared library's), but a link to a tree
    // of more folders than the bound (`ext -> /usr` walked 5.5 GB's worth)
    // is refused with the folder it stopped at named.
    let tree = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(GROUP)
        .join("large-tree");
    let _ = std::fs::remove_dir_all(&tree);
    for i in 0..=MAX_FOLDERS {
        std::fs::create_dir_all(tree.join(format!("d{}/e{i}", i % 100))).expect("mkdir");
    }
    let target = tree.to_str().expect("utf-8").to_owned();
    let errors = with_links("large-link", &[("ext", target)]).expect_err("refused");
    let text = text(&errors);
    assert!(
        text.contains(&format!("more than {MAX_FOLDERS} folders")),
        "{text}"
    );
    assert!(text.contains("large-link/ext/"), "{text}");
}

#[test]
fn an_unquoted_version_reads_as_its_text() {
    let entries =
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    method: main\n";
    for (version, ok) in [("1.0", true), ("1", true), ("2.5", false)] {
        let index = format!("version: {version}\nnamespace: app\nentries:\n{entries}");
        let (_, loaded) = write_and_load(
            GROUP,
            &format!("version-{version}"),
            &[("_index.yaml", &index), ("main.lua", "return {}")],
            &[],
        );
        match loaded {
            Ok(_) => assert!(ok, "version {version} was accepted"),
            Err(e) => {
                let text = text(&e);
                assert!(!ok, "version {version}: {text}");
                assert!(
                    text.contains(&format!("version \"{version}\" is not supported")),
                    "{text}"
                );
            }
        }
    }
}
