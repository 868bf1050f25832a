//! Helpers shared by the test binaries: a runtime handle, temp paths,
//! bounded waiting, and (for PostgreSQL) a throwaway cluster.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use warren_core::{ErrorKind, ProcError, Value};
use warren_sql::ResultLimits;

/// A fresh path under the temp dir, unique per call.
pub fn temp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("warren-sql-{tag}-{}-{n}", std::process::id()))
}

/// Generous result limits.
pub fn limits() -> ResultLimits {
    ResultLimits::bytes(1 << 20)
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Asserts an error's kind and retryability.
pub fn assert_kind(
    r: Result<impl std::fmt::Debug, ProcError>,
    kind: ErrorKind,
    retryable: bool,
) -> ProcError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "{e:?}");
    assert_eq!(e.retryable, retryable, "{e:?}");
    e
}

/// The rows of a query result.
pub fn rows(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// The `code` in an error's details.
pub fn code(e: &ProcError) -> Value {
    e.details
        .as_ref()
        .and_then(|d| d.get("code"))
        .cloned()
        .unwrap_or(Value::Nil)
}
