//! Builds the driver configuration and the pool of a PostgreSQL entry.
//!
//! Nothing connects here: the pool opens connections on first use. A
//! setting that can never work (TLS, which is not built yet) is kept as an
//! error returned by every call, so loading succeeds and the call explains.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::config::SslMode;
use warren_core::{ErrorKind, ProcError};

use super::dial::Dial;
use crate::config::PgConfig;
use crate::error::{err, invalid};
use crate::stats::Counters;

/// The message of an entry that asks for TLS (a known gap).
const NO_TLS: &str = "TLS to PostgreSQL is not built into Warren yet: use sslmode \
                      'disable' or 'prefer' (plain connection), or a Unix socket";

/// A driver config from the entry's fields or `dsn`, with its `options`.
/// `Ok(Err(e))`: valid, but every connection attempt must fail with `e`.
pub(crate) fn pg_config(
    c: &PgConfig,
) -> Result<(tokio_postgres::Config, Option<ProcError>), ProcError> {
    let mut cfg = match &c.dsn {
        Some(dsn) => dsn.parse::<tokio_postgres::Config>().map_err(|e| {
            invalid(format!(
                "dsn is not a valid postgres:// URL or key=value string: {e}"
            ))
        })?,
        None => {
            let mut cfg = tokio_postgres::Config::new();
            if c.host.starts_with('/') {
                cfg.host_path(&c.host);
            } else {
                cfg.host(&c.host);
            }
            cfg.port(c.port).dbname(&c.database).user(&c.username);
            if !c.password.is_empty() {
                cfg.password(c.password.as_bytes());
            }
            cfg
        }
    };
    let mut refuse = None;
    if cfg.get_ssl_mode() == SslMode::Require {
        refuse = Some(err(ErrorKind::Unavailable, false, NO_TLS));
    }
    for (key, value) in &c.options {
        match key.as_str() {
            "sslmode" => match value.as_str() {
                "disable" => {
                    cfg.ssl_mode(SslMode::Disable);
                }
                "prefer" | "allow" => {
                    cfg.ssl_mode(SslMode::Prefer);
                }
                "require" | "verify-ca" | "verify-full" => {
                    refuse = Some(err(
                        ErrorKind::Unavailable,
                        false,
                        format!("sslmode '{value}': {NO_TLS}"),
                    ));
                }
                other => return Err(invalid(format!("unknown sslmode '{other}'"))),
            },
            "connect_timeout" => {
                let secs: u64 = value.parse().map_err(|_| {
                    invalid(format!(
                        "connect_timeout '{value}' is not a number of seconds"
                    ))
                })?;
                if secs > 0 {
                    cfg.connect_timeout(Duration::from_secs(secs));
                }
            }
            "application_name" => {
                cfg.application_name(value);
            }
            other => tracing::warn!(option = other, "postgres: option not supported, ignored"),
        }
    }
    Ok((cfg, refuse))
}

/// The pool: `max_open` connections, waits bounded by `acquire_timeout`,
/// connections older than `max_lifetime` replaced when next handed out.
/// Connections are opened by `dial` (see dial.rs).
pub(crate) fn pool(
    c: &PgConfig,
    cfg: tokio_postgres::Config,
    dial: Arc<Dial>,
    counters: Arc<Counters>,
) -> Result<Pool, ProcError> {
    let manager = Manager::from_connect(
        cfg,
        Shared(dial),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let max_lifetime = c.max_lifetime;
    let timeouts = Timeouts {
        wait: Some(c.acquire_timeout),
        create: Some(c.acquire_timeout),
        recycle: Some(c.acquire_timeout),
    };
    Pool::builder(manager)
        .max_size(c.effective_max_open())
        .timeouts(timeouts)
        .runtime(Runtime::Tokio1)
        .pre_recycle(deadpool_postgres::Hook::sync_fn(move |_, metrics| {
            if metrics.age() > max_lifetime {
                counters.lifetime_closed();
                return Err(HookError::Message("connection passed max_lifetime".into()));
            }
            Ok(())
        }))
        .build()
        .map_err(|e| {
            err(
                ErrorKind::Internal,
                false,
                format!("cannot build pool: {e}"),
            )
        })
}

/// The entry's [`Dial`], shared with its cancel requests, as the pool's
/// connector.
struct Shared(Arc<Dial>);

impl deadpool_postgres::Connect for Shared {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        self.0.connect(pg_config)
    }
}
