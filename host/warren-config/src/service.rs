//! `kind: process.service` entries: a supervised instance of a process entry
//! on a host, with its restart policy and dependencies.

use std::time::Duration;

use warren_core::Value;

/// How a supervision group reacts when one of its services fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Restart only the failed service.
    OneForOne,
    /// Stop every other service of the group, then restart them all.
    OneForAll,
    /// Restart the failed service and the group's services started after it.
    RestForOne,
}

impl Strategy {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// What a failure of an auto-start service to start means for the
/// application (`lifecycle.startup`, Wippy's startup mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Startup {
    /// The application's start fails with it (the default).
    #[default]
    Required,
    /// It is logged, and the rest of the application runs without it.
    Optional,
}

impl Startup {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Startup::Required => "required",
            Startup::Optional => "optional",
        }
    }
}

/// Restart policy of a service; the intensity fields bound its group.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// What the group does when this service fails.
    pub strategy: Strategy,
    /// Delay before the first restart.
    pub initial_delay: Duration,
    /// Longest delay between restarts.
    pub max_delay: Duration,
    /// Growth of the delay per consecutive attempt (at least 1).
    pub backoff_factor: f64,
    /// Random spread of each delay, as a fraction (0 to 1).
    pub jitter: f64,
    /// Consecutive attempts before the service is given up as failed; 0 = unlimited.
    pub max_attempts: u32,
    /// Restarts the group may make within `period` before it fails and escalates.
    pub max_restarts: u32,
    /// The window of `max_restarts`.
    pub period: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            strategy: Strategy::OneForOne,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            backoff_factor: 2.0,
            jitter: 0.1,
            max_attempts: 0,
            max_restarts: 10,
            period: Duration::from_secs(10),
        }
    }
}

/// A supervised service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntry {
    /// The process entry it runs.
    pub process: String,
    /// The host it runs on.
    pub host: String,
    /// Arguments to the process's main.
    pub input: Vec<Value>,
    /// Started with the application.
    pub auto_start: bool,
    /// Whether the application's start depends on this service starting.
    pub startup: Startup,
    /// Services that must be running first (and stop after it).
    pub requires: Vec<String>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// The supervision group (default: its host's id, the tenant).
    pub group: String,
    /// Running this long resets the attempt counter.
    pub stable_threshold: Duration,
    /// How long it may wait for its dependencies to be running.
    pub start_timeout: Duration,
    /// Time between CANCEL and terminate when stopping.
    pub stop_timeout: Duration,
}

/// Converts a YAML value into a process argument.
pub(crate) fn yaml_to_value(y: &serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match y {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(
                n.as_f64()
                    .ok_or_else(|| format!("number {n} is out of range"))?,
            ),
        },
        Y::String(s) => Value::str(s.clone()),
        Y::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_value).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Ok((yaml_to_value(k)?, yaml_to_value(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Y::Tagged(tagged) => return Err(format!("tagged value {} is not supported", tagged.tag)),
    })
}
