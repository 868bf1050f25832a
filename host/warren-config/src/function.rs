//! `function.lua` entries (modules.md §5): a `process.lua` entry's fields
//! plus `pool:`, read into a [`Pool`] and checked at load (an unknown
//! type or key, a zero or absurd size is refused naming the key).

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use warren_core::funcs::{
    DEFAULT_MAX_SIZE, DEFAULT_STATIC_WORKERS, Pool, PoolKind, STATIC_BUFFER_PER_WORKER,
};

/// `kind: function.lua`.
pub(crate) const FUNCTION: &str = "function.lua";

/// Most calls of one function that may run at once: a pool is a bound,
/// and a typo of `max_size: 10000000` should not pass for one.
pub const MAX_POOL_SIZE: usize = 65_536;

/// Most calls one static pool may hold waiting.
pub const MAX_POOL_BUFFER: usize = 1 << 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PoolYaml {
    #[serde(rename = "type")]
    kind: Option<String>,
    max_size: Option<usize>,
    workers: Option<usize>,
    size: Option<usize>,
    buffer: Option<usize>,
}

/// Reads `pool:` (absent: a lazy pool of [`DEFAULT_MAX_SIZE`]). The error
/// names the key under `pool` at fault.
pub(crate) fn parse_pool(yaml: Option<&Yaml>) -> Result<Pool, (String, String)> {
    let y: PoolYaml = match yaml {
        None | Some(Yaml::Null) => PoolYaml::default(),
        Some(y) => {
            serde_yaml_ng::from_value(y.clone()).map_err(|e| ("pool".to_owned(), e.to_string()))?
        }
    };
    let kind = match y.kind.as_deref() {
        None if y.workers.is_some() => PoolKind::Static,
        None | Some("lazy") => PoolKind::Lazy,
        Some("adaptive") => PoolKind::Adaptive,
        Some("static") => PoolKind::Static,
        Some("inline") => PoolKind::Inline,
        Some(other) => {
            let msg =
                format!("unknown pool type '{other}' (expected lazy, adaptive, static or inline)");
            return Err(("pool.type".into(), msg));
        }
    };
    let pool = match kind {
        PoolKind::Static => {
            let workers = y.workers.or(y.size).unwrap_or(DEFAULT_STATIC_WORKERS);
            let key = if y.workers.is_some() {
                "workers"
            } else {
                "size"
            };
            let workers = bounded(key, workers, MAX_POOL_SIZE)?;
            let buffer = y
                .buffer
                .unwrap_or(workers.saturating_mul(STATIC_BUFFER_PER_WORKER));
            if buffer > MAX_POOL_BUFFER {
                let msg = format!("{buffer} is more than {MAX_POOL_BUFFER}");
                return Err(("pool.buffer".into(), msg));
            }
            Pool {
                kind,
                size: workers,
                buffer,
            }
        }
        PoolKind::Inline => Pool {
            kind,
            size: usize::MAX,
            buffer: 0,
        },
        PoolKind::Lazy | PoolKind::Adaptive => Pool {
            kind,
            size: bounded(
                "max_size",
                y.max_size.unwrap_or(DEFAULT_MAX_SIZE),
                MAX_POOL_SIZE,
            )?,
            buffer: usize::MAX,
        },
    };
    Ok(pool)
}

fn bounded(key: &str, n: usize, max: usize) -> Result<usize, (String, String)> {
    if n == 0 || n > max {
        let msg = format!("{n} is not between 1 and {max}");
        return Err((format!("pool.{key}"), msg));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(text: &str) -> Result<Pool, (String, String)> {
        let yaml: Yaml = serde_yaml_ng::from_str(text).expect("yaml");
        parse_pool(Some(&yaml))
    }

    #[test]
    fn types_and_defaults_follow_the_contract() {
        let lazy = parse_pool(None).expect("default");
        assert_eq!((lazy.kind, lazy.size), (PoolKind::Lazy, DEFAULT_MAX_SIZE));
        let st = pool("{ workers: 4 }").expect("static");
        assert_eq!((st.kind, st.size, st.buffer), (PoolKind::Static, 4, 256));
        let st = pool("{ type: static, size: 2, buffer: 3 }").expect("static");
        assert_eq!((st.size, st.buffer), (2, 3));
        let st = pool("{ type: static }").expect("static");
        assert_eq!(st.size, DEFAULT_STATIC_WORKERS);
        let ad = pool("{ type: adaptive, max_size: 5 }").expect("adaptive");
        assert_eq!((ad.kind, ad.size), (PoolKind::Adaptive, 5));
        assert_eq!(
            pool("{ type: inline }").expect("inline").kind,
            PoolKind::Inline
        );
    }

    #[test]
    fn bad_pools_name_the_key() {
        assert_eq!(pool("{ type: eager }").expect_err("refused").0, "pool.type");
        assert_eq!(
            pool("{ max_size: 0 }").expect_err("refused").0,
            "pool.max_size"
        );
        assert_eq!(
            pool("{ workers: 100000000 }").expect_err("refused").0,
            "pool.workers"
        );
        assert_eq!(
            pool("{ workers: 2, buffer: 100000000 }")
                .expect_err("refused")
                .0,
            "pool.buffer"
        );
        let (key, msg) = pool("{ threads: 3 }").expect_err("refused");
        assert_eq!(key, "pool");
        assert!(msg.contains("threads"), "{msg}");
    }
}
