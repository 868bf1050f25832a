//! A throwaway PostgreSQL cluster for the tests: initdb into a temp dir,
//! listening only on a Unix socket in that dir, stopped (`-m immediate`)
//! and removed when the process ends or the guard drops.
//!
//! No PostgreSQL binaries is a test failure, not a skip: CI installs them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A running cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub socket_dir: String,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn find_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut candidates: Vec<PathBuf> = on_path;
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut vs: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        vs.sort();
        vs.reverse();
        candidates.extend(vs);
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .expect(
            "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or under \
             /usr/lib/postgresql/*/bin: install postgresql to run these tests",
        )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).output().expect("run PostgreSQL tool")
    }

    fn start() -> Cluster {
        let bin = find_bin();
        let dir = std::env::temp_dir().join(format!("warren-sql-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let as_postgres = is_root();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the cluster dir failed");
        }
        let port = 20_000 + u16::try_from(std::process::id() % 20_000).expect("port");
        let c = Cluster {
            socket_dir: dir.to_string_lossy().into_owned(),
            dir,
            port,
            bin,
            as_postgres,
        };
        let data = c.data();
        let out = c.run("initdb", &["-A", "trust", "-U", "warren", "-D", &data]);
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!(
            "-c listen_addresses='' -k {} -p {} -c fsync=off -c max_connections=50",
            c.socket_dir, c.port
        );
        let log = c.dir.join("log").to_string_lossy().into_owned();
        let out = c.run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        c
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    /// The socket directory (for `host`).
    pub fn host(&self) -> &str {
        &self.socket_dir
    }
}

/// The one cluster of this test binary, started on first use. A watchdog
/// process stops it (`pg_ctl stop -m immediate`) and removes its directory
/// as soon as this process ends, however it ends (statics are never
/// dropped, and a panic in one test must not leave a server behind).
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let c = Cluster::start();
        c.watch();
        c
    })
}

impl Cluster {
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog must outlive this process, which never waits for it"
    )]
    fn watch(&self) {
        let ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} stop -m immediate",
                ctl.display(),
                self.data()
            )
        } else {
            format!("{} -D {} stop -m immediate", ctl.display(), self.data())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the cluster watchdog");
    }
}
