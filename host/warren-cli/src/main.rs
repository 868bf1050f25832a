//! The `warren` command line: `run` an application, one entry of it, or a
//! single script; `check` an application without running it.
//!
//! Errors print as `error: <what>` followed by `caused by:` lines, never as
//! a panic or backtrace; the exit status is 0 only when everything ended
//! normally (1 for a failed process, 2 for bad input).

mod check;
mod check_file;
mod databases;
mod exec;
mod imports;
mod logging;
mod run;
mod services;
mod types;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, configured at the start of `main` (see warren-alloc for why).
#[global_allocator]
static ALLOCATOR: warren_alloc::Allocator = warren_alloc::Allocator;

/// Exit status when the main process or a check failed.
const EXIT_FAILED: u8 = 1;
/// Exit status for bad input: arguments, configuration, scripts.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit status when services stopped, but some only by being terminated.
const EXIT_TERMINATED: u8 = 3;

/// Warren: many small isolated processes, in Lua or WebAssembly, talking by messages.
#[derive(Parser)]
#[command(name = "warren", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an application folder (with -x, one entry of it) or a single .lua script.
    Run {
        /// An application folder, or a .lua script.
        path: PathBuf,
        /// Run this entry (e.g. app:main) as the main process.
        #[arg(short = 'x', long = "exec", value_name = "ENTRY")]
        entry: Option<String>,
        /// The host to run the main process on (default: the app's only
        /// terminal.host, else its only host).
        #[arg(long)]
        host: Option<String>,
        /// Grant a .lua script ACTION on resources matching PATTERN (e.g.
        /// env.get=APP_*, http_client.request=https://api.example.com);
        /// repeatable. A script holds only these grants.
        #[arg(long = "grant", value_name = "ACTION=PATTERN")]
        grants: Vec<String>,
        /// Arguments passed to the main function, as strings.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Validate an application folder and compile every Lua source (or
    /// check one .lua script or .wasm component as `run` would).
    Check {
        /// The application folder, a .lua script or a .wasm component.
        path: PathBuf,
        /// Fail when a type diagnostic is an error (as `wippy lint`).
        #[arg(long)]
        types: bool,
        /// Print the type diagnostics as JSON lines on stdout.
        #[arg(long)]
        json: bool,
        /// How type diagnostics are printed.
        #[arg(long, value_enum, default_value = "human")]
        format: types::Format,
    },
}

/// A failure to report, with the status to exit with.
pub(crate) struct Failure {
    status: u8,
    error: anyhow::Error,
    /// Exit with `status` without reporting (the main process returned it).
    quiet: bool,
}

impl Failure {
    pub(crate) fn bad_input(error: anyhow::Error) -> Self {
        Failure {
            status: EXIT_BAD_INPUT,
            error,
            quiet: false,
        }
    }

    pub(crate) fn failed(error: anyhow::Error) -> Self {
        Failure {
            status: EXIT_FAILED,
            error,
            quiet: false,
        }
    }

    pub(crate) fn terminated(error: anyhow::Error) -> Self {
        Failure {
            status: EXIT_TERMINATED,
            error,
            quiet: false,
        }
    }

    /// The main process ended normally and returned `status` (1..=255): the
    /// program exits with it, as Wippy's `run --exec` does.
    pub(crate) fn returned(status: u8) -> Self {
        Failure {
            status,
            error: anyhow::anyhow!("the main process returned {status}"),
            quiet: true,
        }
    }
}

fn main() -> ExitCode {
    warren_alloc::configure();
    logging::init();
    raise_fd_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_BAD_INPUT } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Run {
            path,
            entry,
            host,
            grants,
            args,
        } => run::run(&path, entry, host, &grants, args),
        Command::Check {
            path,
            types,
            json,
            format,
        } => check::check(
            &path,
            &check::TypeOptions {
                fatal: types,
                json,
                format,
            },
        ),
    };
    // The log's queued lines before the error report, as they came.
    logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.quiet {
                report(&failure.error);
            }
            ExitCode::from(failure.status)
        }
    }
}

/// Prints an error and its causes in the documented format.
pub(crate) fn report(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
}

/// Raises the soft limit of open file descriptors to the hard limit, as
/// servers do: every file, socket and database connection of every host
/// draws on it, and a soft limit of 1,024 is a few processes' worth. Hosts
/// share what it allows through their `max_handles_per_host`. A failure
/// leaves the limit as it was.
#[cfg(unix)]
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        let err = std::io::Error::last_os_error();
        tracing::debug!("RLIMIT_NOFILE: cannot read the open-file limit: {err}");
        return;
    }
    if lim.rlim_cur >= lim.rlim_max {
        tracing::debug!(
            "RLIMIT_NOFILE: the open-file limit is already at its hard limit ({})",
            lim.rlim_max
        );
        return;
    }
    let old = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid `rlimit` for the call's duration.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        tracing::debug!(
            "RLIMIT_NOFILE: raised the open-file limit from {old} to {}",
            lim.rlim_max
        );
    } else {
        let err = std::io::Error::last_os_error();
        tracing::debug!(
            "RLIMIT_NOFILE: cannot raise the open-file limit from {old} to {}: {err}",
            lim.rlim_max
        );
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() {}
