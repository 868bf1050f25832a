//! The socket of option `unix_socket`: which path is checked against
//! `http_client.unix_socket`, and which is dialled.
//!
//! Guarantees: a path that is not absolute or has a `.` or `..`
//! component is refused before any grant is consulted (a glob such as
//! `/run/app/*` matches `/run/app/../secret.sock` as text). A path whose
//! text is granted is then resolved, symbolic links followed, on the
//! blocking lane as its caller's host (`warren_core::blocking_lane`; a
//! hung file system delays that host's calls only, within the request's
//! timeout); what it resolves to must be granted too. Every hop connects
//! to the resolved path, which holds no link, `.` or `..` for the kernel
//! to resolve again: a link the caller swaps after the check is not
//! followed. (A directory of that path replaced by a link between the
//! check and the connection, by someone who may write the host's
//! directories, is beyond what a path check can see.)

use std::path::{Path, PathBuf};

use tokio::time::Instant;
use warren_core::ProcError;
use warren_core::grants::{Grants, HTTP_UNIX_SOCKET};

use crate::error::{denied, timeout, unavailable};

/// `PERMISSION_DENIED` unless `path`, as given, may be dialled by a
/// caller holding `grants`: absolute, without `.` or `..` components, and
/// granted. Makes no system call.
pub(crate) fn check_given(path: &str, grants: &Grants) -> Result<(), ProcError> {
    if !is_plain_absolute(path) {
        return Err(denied(format!(
            "http_client.unix_socket not granted for {path:?}: a socket path must be absolute, \
             without \".\" or \"..\" components"
        )));
    }
    if !grants.allows(HTTP_UNIX_SOCKET, path) {
        return Err(denied(format!(
            "http_client.unix_socket not granted for {path:?}"
        )));
    }
    Ok(())
}

/// The path to dial for `path` (which passed [`check_given`]): `path`
/// with its links resolved, on the blocking lane as host `caller`, by
/// `deadline`. `PERMISSION_DENIED` unless the resolved path is granted
/// too; `UNAVAILABLE` if it cannot be resolved (no such file), `TIMEOUT`
/// past `deadline`.
pub(crate) async fn resolve(
    path: &str,
    grants: &Grants,
    caller: u16,
    deadline: Instant,
) -> Result<PathBuf, ProcError> {
    let given = PathBuf::from(path);
    let work = warren_core::blocking_lane().run(caller, move || std::fs::canonicalize(given));
    let resolved = match tokio::time::timeout_at(deadline, work).await {
        Ok(Some(Ok(resolved))) => resolved,
        Ok(Some(Err(e))) => {
            return Err(unavailable(format!(
                "cannot resolve unix_socket {path:?}: {e}"
            )));
        }
        Ok(None) => {
            return Err(unavailable(format!(
                "resolving unix_socket {path:?} was dropped unrun"
            )));
        }
        Err(_) => {
            return Err(timeout(format!("resolving unix_socket {path:?} timed out")));
        }
    };
    check_resolved(path, &resolved, grants)?;
    Ok(resolved)
}

/// `PERMISSION_DENIED` unless `resolved`, what `path` resolves to, is
/// granted (a path that is not UTF-8 matches no pattern).
fn check_resolved(path: &str, resolved: &Path, grants: &Grants) -> Result<(), ProcError> {
    match resolved.to_str() {
        Some(text) if text == path => Ok(()),
        Some(text) if grants.allows(HTTP_UNIX_SOCKET, text) => Ok(()),
        _ => Err(denied(format!(
            "http_client.unix_socket not granted for {path:?} (resolves to {resolved:?})"
        ))),
    }
}

/// Whether `path` starts at the root and has no `.` or `..` component
/// (`Path::components` would hide a `.` in the middle).
fn is_plain_absolute(path: &str) -> bool {
    path.starts_with('/') && path.split('/').all(|part| part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_paths_pass() {
        for ok in [
            "/run/app.sock",
            "/run//app.sock",
            "/run/.app.sock",
            "/run/app..sock",
        ] {
            assert!(is_plain_absolute(ok), "{ok}");
        }
        for bad in [
            "run/app.sock",
            "./app.sock",
            "/run/../secret.sock",
            "/run/./app.sock",
            "/run/./../secret.sock",
            "/run//../secret.sock",
            "/run/app.sock/..",
            "/run/app.sock/.",
            "/..",
        ] {
            assert!(!is_plain_absolute(bad), "{bad}");
        }
    }

    #[test]
    fn the_resolved_path_must_be_granted_and_is_quoted() {
        let mut grants = Grants::new();
        grants
            .add(HTTP_UNIX_SOCKET, "/run/app/*")
            .expect("valid pattern");
        let given = "/run/app/link.sock";
        check_resolved(given, Path::new(given), &grants).expect("unchanged");
        check_resolved(given, Path::new("/run/app/real.sock"), &grants).expect("granted");
        let err = check_resolved(given, Path::new("/run/secret.sock"), &grants)
            .expect_err("resolves outside");
        assert_eq!(err.kind, warren_core::ErrorKind::PermissionDenied);
        assert!(
            err.message.contains("\"/run/app/link.sock\"")
                && err.message.contains("\"/run/secret.sock\""),
            "{}",
            err.message
        );
    }
}
