//! The `env` variables end to end: every storage kind on real files in a
//! temporary folder, routers, defaults, read-only variables, lookup order,
//! shared public names and the caps.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warren_core::ErrorKind;
use warren_env::{
    Env, EnvError, MAX_FILE_BYTES, MAX_MEMORY_BYTES, MAX_VALUE_BYTES, StorageDef, StorageKind,
    VariableDef, check_name,
};

/// A fresh temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "warren-env-{tag}-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

fn storage(id: &str, kind: StorageKind) -> StorageDef {
    StorageDef {
        id: id.into(),
        kind,
    }
}

fn var(id: &str, name: Option<&str>, storage: &str) -> VariableDef {
    VariableDef {
        id: id.into(),
        variable: name.map(Into::into),
        storage: storage.into(),
        default: None,
        readonly: false,
    }
}

fn file_kind(path: &Path, auto_create: bool) -> StorageKind {
    StorageKind::File {
        path: path.to_path_buf(),
        auto_create,
        file_mode: 0o600,
        dir_mode: 0o700,
    }
}

fn statics(pairs: &[(&str, &str)]) -> StorageKind {
    StorageKind::Static(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn get(env: &Env, name: &str) -> Option<String> {
    let var = env.lookup(name, "app").expect("declared");
    env.get(var).expect("readable")
}

fn set(env: &Env, name: &str, value: &str) -> Result<(), ErrorKind> {
    let var = env.lookup(name, "app").expect("declared");
    env.set(var, value).map_err(|e| e.kind)
}

#[test]
fn env_is_shared_by_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Env>();
}

#[test]
fn static_storage_reads_and_refuses_writes() {
    let env = Env::new(
        vec![storage("app:defaults", statics(&[("PORT", "8080")]))],
        vec![var("app:port", Some("PORT"), "app:defaults")],
    )
    .expect("valid");
    assert_eq!(get(&env, "PORT").as_deref(), Some("8080"));
    assert_eq!(set(&env, "PORT", "1"), Err(ErrorKind::PermissionDenied));
}

#[test]
fn os_storage_reads_only_the_declared_key() {
    let key = format!("WARREN_ENV_TEST_{}", std::process::id());
    // SAFETY: this test's variable name is unique to it; no other thread
    // of the test binary reads or writes it.
    unsafe { std::env::set_var(&key, "from-os") };
    let env = Env::new(
        vec![storage("app:os", StorageKind::Os)],
        vec![
            var("app:v", Some(&key), "app:os"),
            var("app:path", Some("WARREN_NOT_DECLARED_PATH"), "app:os"),
        ],
    )
    .expect("valid");
    assert_eq!(get(&env, &key).as_deref(), Some("from-os"));
    assert_eq!(get(&env, "WARREN_NOT_DECLARED_PATH"), None);
    assert_eq!(set(&env, &key, "x"), Err(ErrorKind::PermissionDenied));
    // An undeclared OS variable is reachable by no name.
    assert!(env.lookup("PATH", "app").is_none());
    assert!(env.resolve("HOME").is_none());
}

#[test]
fn os_storage_without_public_name_reads_the_entry_id() {
    let env = Env::new(
        vec![storage("app:os", StorageKind::Os)],
        vec![var("app:no_name", None, "app:os")],
    )
    .expect("valid");
    // "app:no_name" is not a settable OS name: unset, nothing else read.
    assert_eq!(get(&env, "app:no_name"), None);
    assert_eq!(env.variables().next().expect("one").key(), "app:no_name");
}

#[test]
fn memory_storage_is_shared_and_empty_counts_as_unset() {
    let env = Arc::new(
        Env::new(
            vec![storage("app:mem", StorageKind::Memory)],
            vec![VariableDef {
                default: Some("dflt".into()),
                ..var("app:mode", Some("MODE"), "app:mem")
            }],
        )
        .expect("valid"),
    );
    assert_eq!(get(&env, "MODE").as_deref(), Some("dflt"));
    let writer = Arc::clone(&env);
    std::thread::spawn(move || set(&writer, "MODE", "fast").expect("writes"))
        .join()
        .expect("thread");
    assert_eq!(get(&env, "MODE").as_deref(), Some("fast"));
    set(&env, "MODE", "").expect("writes");
    assert_eq!(get(&env, "MODE").as_deref(), Some("dflt"));
}

#[test]
fn empty_default_is_no_default() {
    let env = Env::new(
        vec![storage("app:mem", StorageKind::Memory)],
        vec![VariableDef {
            default: Some(String::new()),
            ..var("app:x", Some("X"), "app:mem")
        }],
    )
    .expect("valid");
    assert_eq!(get(&env, "X"), None);
}

#[test]
fn readonly_variable_refuses_writes() {
    let env = Env::new(
        vec![storage("app:mem", StorageKind::Memory)],
        vec![VariableDef {
            readonly: true,
            ..var("app:x", Some("X"), "app:mem")
        }],
    )
    .expect("valid");
    assert_eq!(set(&env, "X", "1"), Err(ErrorKind::PermissionDenied));
}

#[test]
fn file_storage_reads_writes_and_keeps_comments() {
    let dir = TempDir::new("file");
    let path = dir.0.join("app.env");
    std::fs::write(&path, "# settings\nA = one \nB=two\n").expect("write");
    let env = Env::new(
        vec![storage("app:file", file_kind(&path, false))],
        vec![
            var("app:a", Some("A"), "app:file"),
            var("app:b", Some("B"), "app:file"),
            var("app:c", Some("C"), "app:file"),
        ],
    )
    .expect("valid");
    assert_eq!(get(&env, "A").as_deref(), Some("one"));
    set(&env, "B", "2=x").expect("writes");
    set(&env, "C", "three").expect("writes");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text, "# settings\nA = one \nB=2=x\nC=three\n");
    assert_eq!(get(&env, "B").as_deref(), Some("2=x"));
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers = std::fs::read_dir(&dir.0).expect("list").count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}

#[test]
fn file_storage_refuses_line_breaks_and_nul() {
    let dir = TempDir::new("nul");
    let path = dir.0.join("app.env");
    let env = Env::new(
        vec![storage("app:file", file_kind(&path, true))],
        vec![var("app:a", Some("A"), "app:file")],
    )
    .expect("valid");
    for bad in ["a\nB=evil", "a\rb", "a\0b"] {
        assert_eq!(set(&env, "A", bad), Err(ErrorKind::Invalid), "{bad:?}");
    }
    assert!(!path.exists(), "nothing written");
}

#[test]
fn file_storage_auto_create_makes_folder_and_file() {
    let dir = TempDir::new("create");
    let path = dir.0.join("config/nested/app.env");
    let env = Env::new(
        vec![storage("app:file", file_kind(&path, true))],
        vec![var("app:a", Some("A"), "app:file")],
    )
    .expect("valid");
    assert!(!path.exists(), "new touches nothing");
    assert_eq!(get(&env, "A"), None, "a missing file holds nothing");
    env.prepare().expect("creates");
    assert!(path.is_file());
    let file = std::fs::metadata(&path).expect("stat");
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    let folder = std::fs::metadata(path.parent().expect("parent")).expect("stat");
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    set(&env, "A", "1").expect("writes");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "A=1\n");
}

#[test]
fn file_storage_without_auto_create_refuses_a_missing_file() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("absent.env");
    let env = Env::new(
        vec![storage("app:file", file_kind(&path, false))],
        vec![var("app:a", Some("A"), "app:file")],
    )
    .expect("valid");
    env.prepare().expect("nothing to do");
    assert_eq!(set(&env, "A", "1"), Err(ErrorKind::NotFound));
    assert!(!path.exists());
}

#[test]
fn file_storage_caps() {
    let dir = TempDir::new("caps");
    let path = dir.0.join("big.env");
    let line = format!("K={}\n", "x".repeat(1000));
    std::fs::write(&path, line.repeat(MAX_FILE_BYTES / line.len() + 1)).expect("write");
    let env = Env::new(
        vec![storage("app:file", file_kind(&path, false))],
        vec![var("app:a", Some("A"), "app:file")],
    )
    .expect("valid");
    let var = env.lookup("A", "app").expect("declared");
    let err = env.get(var).expect_err("too large to read");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("app:file"), "{}", err.message);
    // Just under the cap: a write that would pass it is refused.
    let under = line.repeat(MAX_FILE_BYTES / line.len() - 1);
    std::fs::write(&path, &under).expect("write");
    let big = "y".repeat(MAX_VALUE_BYTES);
    assert_eq!(set(&env, "A", &big), Err(ErrorKind::RateLimited));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), under);
}

#[test]
fn value_cap_applies_to_every_writable_storage() {
    let env = Env::new(
        vec![storage("app:mem", StorageKind::Memory)],
        vec![var("app:a", Some("A"), "app:mem")],
    )
    .expect("valid");
    let big = "y".repeat(MAX_VALUE_BYTES + 1);
    assert_eq!(set(&env, "A", &big), Err(ErrorKind::Invalid));
}

#[test]
fn memory_storage_total_cap() {
    let names: Vec<String> = (0..80).map(|i| format!("V{i}")).collect();
    let vars = names
        .iter()
        .map(|n| var(&format!("app:{n}"), Some(n), "app:mem"))
        .collect();
    let env = Env::new(vec![storage("app:mem", StorageKind::Memory)], vars).expect("valid");
    let value = "z".repeat(MAX_VALUE_BYTES - 8);
    let fits = MAX_MEMORY_BYTES / (value.len() + 3);
    for name in &names[..fits] {
        set(&env, name, &value).expect("fits");
    }
    assert_eq!(set(&env, &names[fits], &value), Err(ErrorKind::RateLimited));
    // Replacing a value frees its bytes first.
    set(&env, &names[0], "small").expect("replaces");
    set(&env, &names[fits], &value).expect("fits now");
}

#[test]
fn router_reads_in_order_and_writes_to_the_first() {
    let dir = TempDir::new("router");
    let path = dir.0.join("app.env");
    std::fs::write(&path, "A=from-file\nB=from-file\n").expect("write");
    let env = Env::new(
        vec![
            storage("app:mem", StorageKind::Memory),
            storage("app:file", file_kind(&path, false)),
            storage("app:defaults", statics(&[("C", "static")])),
            storage("app:inner", StorageKind::Router(vec!["app:file".into()])),
            storage(
                "app:chain",
                StorageKind::Router(vec![
                    "app:mem".into(),
                    "app:inner".into(),
                    "app:defaults".into(),
                ]),
            ),
            storage(
                "app:ro_chain",
                StorageKind::Router(vec!["app:defaults".into(), "app:mem".into()]),
            ),
        ],
        vec![
            var("app:a", Some("A"), "app:chain"),
            var("app:c", Some("C"), "app:chain"),
            var("app:d", Some("D"), "app:chain"),
            var("app:c2", None, "app:ro_chain"),
        ],
    )
    .expect("valid");
    assert_eq!(get(&env, "A").as_deref(), Some("from-file"));
    assert_eq!(get(&env, "C").as_deref(), Some("static"));
    assert_eq!(get(&env, "D"), None);
    set(&env, "A", "from-memory").expect("writes");
    assert_eq!(get(&env, "A").as_deref(), Some("from-memory"));
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains("A=from-file"),
        "the file is untouched: {text}"
    );
    assert_eq!(set(&env, "c2", "x"), Err(ErrorKind::PermissionDenied));
}

#[test]
fn lookup_order_public_name_then_id_then_namespace() {
    let env = Env::new(
        vec![storage(
            "app:s",
            statics(&[("X", "public"), ("other:X", "by-id"), ("app:Y", "local")]),
        )],
        vec![
            var("app:x", Some("X"), "app:s"),
            var("other:X", None, "app:s"),
            var("app:Y", None, "app:s"),
        ],
    )
    .expect("valid");
    // "X" is a public name first.
    assert_eq!(env.lookup("X", "other").expect("found").id, "app:x");
    assert_eq!(env.lookup("other:X", "app").expect("found").id, "other:X");
    assert_eq!(env.lookup("x", "app").expect("found").id, "app:x");
    assert_eq!(env.lookup("Y", "app").expect("found").id, "app:Y");
    assert!(env.lookup("Y", "other").is_none());
    assert!(env.lookup("app:nope", "app").is_none());
    assert_eq!(get(&env, "Y").as_deref(), Some("local"));
    assert_eq!(env.resolve("X").as_deref(), Some("public"));
    assert_eq!(env.resolve("other:X").as_deref(), Some("by-id"));
    assert_eq!(env.resolve("Y"), None, "resolve takes no namespace");
}

#[test]
fn shared_public_name_first_wins_with_a_warning() {
    let env = Env::new(
        vec![storage("app:s", statics(&[("N", "v")]))],
        vec![
            var("app:first", Some("N"), "app:s"),
            var("app:second", Some("N"), "app:s"),
        ],
    )
    .expect("a warning, not an error");
    assert_eq!(env.lookup("N", "x").expect("found").id, "app:first");
    assert_eq!(
        env.lookup("app:second", "x").expect("found").id,
        "app:second"
    );
    assert_eq!(env.warnings().len(), 1);
    let warning = &env.warnings()[0];
    assert!(
        warning.contains("app:second") && warning.contains("app:first"),
        "{warning}"
    );
    let names: Vec<&str> = env.variables().map(|v| env.name_of(v)).collect();
    assert_eq!(names, ["N", "app:second"]);
}

#[test]
fn definition_errors_name_the_entry() {
    let mem = || storage("app:mem", StorageKind::Memory);
    let cases: Vec<(Vec<StorageDef>, Vec<VariableDef>, EnvError)> = vec![
        (
            vec![mem()],
            vec![var("app:v", Some("v"), "app:nope")],
            EnvError::UnknownStorage {
                entry: "app:v".into(),
                storage: "app:nope".into(),
            },
        ),
        (
            vec![mem()],
            vec![var("app:v", Some("BAD-NAME"), "app:mem")],
            EnvError::BadName {
                entry: "app:v".into(),
                name: "BAD-NAME".into(),
            },
        ),
        (
            vec![mem(), mem()],
            vec![],
            EnvError::DuplicateId {
                entry: "app:mem".into(),
            },
        ),
        (
            vec![storage("no-namespace", StorageKind::Memory)],
            vec![],
            EnvError::BadId {
                entry: "no-namespace".into(),
            },
        ),
        (
            vec![storage("app:r", StorageKind::Router(vec![]))],
            vec![],
            EnvError::EmptyRouter {
                entry: "app:r".into(),
            },
        ),
        (
            vec![storage(
                "app:r",
                StorageKind::Router(vec!["app:gone".into()]),
            )],
            vec![],
            EnvError::UnknownRouterStorage {
                entry: "app:r".into(),
                storage: "app:gone".into(),
            },
        ),
    ];
    for (storages, variables, expected) in cases {
        let err = Env::new(storages, variables).expect_err("refused");
        assert_eq!(err, expected);
        assert!(err.to_string().contains(expected.entry()), "{err}");
    }
}

#[test]
fn router_cycles_are_refused() {
    let router = |id: &str, to: &[&str]| {
        storage(
            id,
            StorageKind::Router(to.iter().map(|s| (*s).to_owned()).collect()),
        )
    };
    let err = Env::new(
        vec![
            storage("app:mem", StorageKind::Memory),
            router("app:a", &["app:mem", "app:b"]),
            router("app:b", &["app:c"]),
            router("app:c", &["app:a"]),
        ],
        vec![],
    )
    .expect_err("cycle");
    assert!(matches!(&err, EnvError::RouterCycle { cycle, .. } if cycle.len() == 4));
    assert_eq!(err.key(), "storages");
    assert!(
        err.to_string().contains("app:a -> app:b -> app:c -> app:a"),
        "{err}"
    );
    let err = Env::new(vec![router("app:self", &["app:self"])], vec![]).expect_err("self");
    assert!(matches!(err, EnvError::RouterCycle { .. }));
}

#[test]
fn names_code_passes_are_checked() {
    assert!(check_name("DB_PASSWORD").is_ok());
    assert!(check_name("app.env:db-password").is_ok());
    for bad in ["", "a b", "a\0b", "a\nb"] {
        let err = check_name(bad).expect_err("malformed");
        assert_eq!(err.kind, ErrorKind::Invalid, "{bad:?}");
    }
    let long = "A".repeat(warren_env::MAX_NAME_LEN + 1);
    assert_eq!(
        check_name(&long).expect_err("long").kind,
        ErrorKind::Invalid
    );
}

#[test]
fn concurrent_file_writes_lose_no_update() {
    let dir = TempDir::new("concurrent");
    let path = dir.0.join("app.env");
    let names: Vec<String> = (0..8).map(|i| format!("W{i}")).collect();
    let vars = names
        .iter()
        .map(|n| var(&format!("app:{n}"), Some(n), "app:file"))
        .collect();
    let env =
        Arc::new(Env::new(vec![storage("app:file", file_kind(&path, true))], vars).expect("valid"));
    let threads: Vec<_> = names
        .iter()
        .map(|name| {
            let (env, name) = (Arc::clone(&env), name.clone());
            std::thread::spawn(move || {
                for round in 0..20 {
                    set(&env, &name, &format!("{name}-{round}")).expect("writes");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    for name in &names {
        assert_eq!(get(&env, name), Some(format!("{name}-19")));
    }
}
