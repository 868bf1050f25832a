//! Supervised services (`kind: process.service`).
//!
//! [`Supervisor`] is the policy — restart strategies, backoff, intensity,
//! dependency order, graceful shutdown — as a clock-free state machine;
//! [`driver`] runs it against a live runtime on its own thread and offers
//! the `services` control that Lua processes use.

pub mod backoff;
pub mod budget;
pub mod driver;
mod hold;
mod machine;
mod work;

pub use machine::{Action, LogGate, ServiceStatus, State, Supervisor, Then};
