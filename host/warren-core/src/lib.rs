//! Warren's process model, independent of any language.
//!
//! The host owns everything a process can observe about other processes:
//! pids, mailboxes, links, monitors, the name registry and timers. A language
//! front-end (Lua today, WebAssembly next) implements [`Frontend`] and talks to
//! its worker only through [`Core`]; it never touches the scheduler's
//! internals. Guarantees: messages between one sender and one receiver arrive
//! in order; a send to an exited pid is an error for the sender, never a
//! crash; every exit notifies exactly the linked and monitoring processes.

pub mod bufpool;
pub mod bus;
pub mod catalog;
pub mod core;
pub mod directory;
pub mod duration;
pub mod error;
pub mod frontend;
pub mod funcs;
pub mod grants;
pub mod hostcall;
pub mod item;
pub mod lane;
pub mod limits;
pub mod logline;
pub mod mailbox;
pub mod msgpack;
pub mod payload;
pub mod pid;
mod placement;
pub mod rate;
pub mod readfile;
pub mod registry;
pub mod rest;
pub mod room;
pub mod runtime;
pub mod services;
pub mod share;
#[cfg(test)]
mod testkit;
pub mod value;
mod worker;

pub use crate::catalog::EntryInfo;
pub use crate::core::{Core, CoreRef, TakenDone};
pub use error::{ErrorKind, ProcError, SpawnError};
pub use frontend::{Frontend, FrontendFactory, Program};
pub use funcs::{FunctionCall, Functions, Pool, PoolKind};
pub use grants::Grants;
pub use hostcall::{Copied, Handle, Keep, OpDone, OpResult, OpValue, Resource, io_runtime};
pub use item::{Event, Exit, Item, Message};
pub use lane::{
    BLOCKING_LANE_PER_HOST, BLOCKING_LANE_RESERVE, BLOCKING_LANE_THREADS, DNS_LANE_PER_HOST,
    DNS_LANE_RESERVE, DNS_LANE_THREADS, Lane, LaneHandle, SQL_LANE_PER_HOST, SQL_LANE_RESERVE,
    SQL_LANE_THREADS, SYSTEM_QUEUE, blocking_lane, dns_lane, sql_lane,
};
pub use limits::{HostLimits, HostQuota};
pub use mailbox::Mailbox;
pub use payload::{Packed, Payload};
pub use pid::{Pid, PidText};
pub use room::{Room, RoomFull};
pub use runtime::{ExitCallback, HostSpec, Runtime, RuntimeBuilder, SpawnRequest};
pub use services::{ServiceCommand, ServiceControl, ServiceInfo};
pub use value::Value;
