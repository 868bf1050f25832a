//! Lexical normalisation of the paths a process writes.
//!
//! [`normalize`] turns a process's path (absolute from the volume root, or
//! relative to its handle's working directory) into a path relative to the
//! volume root that holds only plain names: no `.`, no `..`, no leading or
//! repeated `/`. It is an early refusal, not the guarantee: whatever it
//! returns is still resolved beneath the volume's directory handle by
//! cap-std, which is what keeps symbolic links and races inside.

use warren_core::ProcError;

use crate::error::invalid;

/// Longest path accepted, in bytes, both as written and once joined to the
/// working directory. Matches Linux's `PATH_MAX`; prevents a process from
/// making the host walk or copy megabytes of `a/a/a/...` per call.
pub const MAX_PATH_BYTES: usize = 4096;

/// Most components a normalised path may have. Prevents a process from
/// driving arbitrarily deep lookups (each component is one step of the
/// kernel's walk beneath the root).
pub const MAX_PATH_DEPTH: usize = 256;

/// What [`normalize`] returns for the volume root itself.
pub const ROOT: &str = ".";

/// The path `p`, relative to the working directory `cwd` (an absolute
/// volume path, `/` initially) unless it starts with `/`, normalised
/// lexically into a path relative to the volume root ([`ROOT`] for the
/// root).
///
/// Errors (`INVALID`): an empty path, a NUL byte, a path longer than
/// [`MAX_PATH_BYTES`] or deeper than [`MAX_PATH_DEPTH`], and one that rises
/// above the root ("path traversal not allowed").
pub fn normalize(cwd: &str, p: &str) -> Result<String, ProcError> {
    check_shape(p)?;
    let mut parts: Vec<&str> = Vec::new();
    if !p.starts_with('/') {
        check_shape(cwd)?;
        push_components(&mut parts, cwd, cwd)?;
    }
    push_components(&mut parts, p, p)?;
    let joined = parts.join("/");
    if joined.len() > MAX_PATH_BYTES {
        return Err(invalid(format!("path '{p}' is too long")));
    }
    Ok(if joined.is_empty() {
        ROOT.to_string()
    } else {
        joined
    })
}

/// The absolute volume path (`/a/b`, `/` for the root) of a path that
/// [`normalize`] returned.
pub fn absolute(rel: &str) -> String {
    if rel == ROOT {
        "/".to_string()
    } else {
        format!("/{rel}")
    }
}

/// Whether `p`, as the process wrote it, can name only a directory: it
/// ends with `/`, or its last component is `.` or `..`. [`normalize`]
/// drops that trailing part, so a caller that opens or stats the result
/// asks this first: `a.txt/` must not reach the file `a.txt`, as on Linux
/// (`open("a.txt/")` is `ENOTDIR`).
pub(crate) fn names_directory(p: &str) -> bool {
    p.ends_with('/') || matches!(p.rsplit('/').next(), Some("." | ".."))
}

/// The last name of a normalised path (`/` for the root).
pub fn base_name(rel: &str) -> &str {
    if rel == ROOT {
        return "/";
    }
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Refuses the paths that are malformed whatever they name.
fn check_shape(p: &str) -> Result<(), ProcError> {
    if p.is_empty() {
        return Err(invalid("empty path"));
    }
    if p.contains('\0') {
        return Err(invalid("path contains a NUL byte"));
    }
    if p.len() > MAX_PATH_BYTES {
        return Err(invalid(format!(
            "path is too long ({} bytes, the limit is {MAX_PATH_BYTES})",
            p.len()
        )));
    }
    Ok(())
}

/// Applies the components of `p` to `parts`; `shown` names the path in
/// errors.
fn push_components<'a>(parts: &mut Vec<&'a str>, p: &'a str, shown: &str) -> Result<(), ProcError> {
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(format!("path traversal not allowed: '{shown}'")));
                }
            }
            name => {
                if parts.len() == MAX_PATH_DEPTH {
                    return Err(invalid(format!(
                        "path '{shown}' is too deep (the limit is {MAX_PATH_DEPTH} levels)"
                    )));
                }
                parts.push(name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_lexically() {
        assert_eq!(normalize("/", "a//b/./c/../d/").expect("ok"), "a/b/d");
        assert_eq!(normalize("/x/y", "../z").expect("ok"), "x/z");
        assert_eq!(normalize("/x/y", "/z").expect("ok"), "z");
        assert_eq!(normalize("/", "/").expect("ok"), ROOT);
        assert_eq!(normalize("/a", "..").expect("ok"), ROOT);
        assert!(normalize("/", "..").is_err());
        assert!(normalize("/a", "../../b").is_err());
    }

    #[test]
    fn names_and_absolute_paths() {
        assert_eq!(absolute(ROOT), "/");
        assert_eq!(absolute("a/b"), "/a/b");
        assert_eq!(base_name("a/b"), "b");
        assert_eq!(base_name(ROOT), "/");
    }

    #[test]
    fn a_trailing_slash_dot_or_dot_dot_names_a_directory() {
        for p in [
            "a.txt/",
            "a.txt//",
            "a.txt/.",
            "sub/a.txt/..",
            "/",
            ".",
            "..",
        ] {
            assert!(names_directory(p), "{p}");
        }
        for p in ["a.txt", "/a.txt", "sub/a.txt", "a.", "a..", ".a"] {
            assert!(!names_directory(p), "{p}");
        }
    }
}
