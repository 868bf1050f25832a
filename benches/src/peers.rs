//! The neighbours, measured in the same run: BEAM (`peers/scale.erl`, run
//! by `escript`) and Go (`peers/scale.go`, built by `go build`) run the
//! same scenarios as Warren, timed the same way, when those tools are
//! installed (`apt-get install erlang-base golang-go`). Ratios taken in
//! one run are what the goals compare: this machine is shared and noisy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use warren_tests::TempDir;

/// A neighbour runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Erlang/OTP's BEAM.
    Beam,
    /// Go's runtime.
    Go,
}

impl Peer {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Beam => "BEAM",
            Peer::Go => "Go",
        }
    }
}

/// The neighbours found on this machine.
pub struct Peers {
    beam: bool,
    /// The built Go program, in a directory removed on drop.
    go: Option<(TempDir, PathBuf)>,
}

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Peers {
    /// Looks for `escript` and `go`, and builds the Go program.
    pub fn detect() -> Peers {
        let beam = Command::new("escript")
            .arg("-h")
            .output()
            .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty());
        let go = runs("go", "version").then(build_go).flatten();
        Peers { beam, go }
    }

    /// Whether `peer` can be run here.
    pub fn has(&self, peer: Peer) -> bool {
        match peer {
            Peer::Beam => self.beam,
            Peer::Go => self.go.is_some(),
        }
    }

    /// Runs `scenario` with `n` on `peer` with `threads` schedulers (BEAM's
    /// `+S`, Go's `GOMAXPROCS`); `None` when the peer is missing or failed
    /// (said on standard error).
    pub fn time(&self, peer: Peer, scenario: &str, n: u64, threads: usize) -> Option<Duration> {
        let mut cmd = match peer {
            Peer::Beam if self.beam => {
                let mut c = Command::new("escript");
                c.arg(sources().join("scale.erl"))
                    .env("ERL_FLAGS", format!("+S {threads}"));
                c
            }
            Peer::Go => {
                let mut c = Command::new(&self.go.as_ref()?.1);
                c.env("GOMAXPROCS", threads.to_string());
                c
            }
            Peer::Beam => return None,
        };
        let out = cmd.arg(scenario).arg(n.to_string()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.trim().parse::<u64>() {
            Ok(ns) if out.status.success() => Some(Duration::from_nanos(ns)),
            _ => {
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                eprintln!(
                    "warren-bench: {} {scenario} {n} failed ({}): {first}",
                    peer.name(),
                    out.status
                );
                None
            }
        }
    }
}

/// Builds `peers/scale.go` into a fresh directory.
fn build_go() -> Option<(TempDir, PathBuf)> {
    let dir = TempDir::new("peers-go");
    let exe = dir.path().join("scale");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&exe)
        .arg(sources().join("scale.go"))
        .env("GOCACHE", dir.path().join("cache"))
        .env("GOPATH", dir.path().join("path"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "warren-bench: go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some((dir, exe))
}
