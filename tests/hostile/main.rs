//! The hostile suite: scripts and components that try to escape their
//! sandbox or starve their neighbours. Each case asserts the specific
//! outcome (which error, which exit reason) and that an unrelated process
//! on the same host and worker kept making progress (see `harness`).

mod c_call_loops;
mod c_loops;
mod cross_tenant;
mod exit_telling;
mod fast_paths;
mod foreign_entries;
mod forged_handles;
mod fs_env_surface;
mod funcs_surface;
mod handles;
mod harness;
mod held_memory;
mod host_memory;
mod host_metamethods;
mod http_budget;
mod io_surface;
mod kernel_metamethods;
mod kernel_unwind;
mod lua_cpu;
mod lua_memory;
mod lua_sandbox;
mod mailbox_flood;
mod measure_walk;
mod names;
mod panics;
mod parking;
mod quotas;
mod reach;
mod reach_paths;
mod release_on_end;
mod shared_state;
mod sql_cpu;
mod sql_engine;
mod tokens;
mod typed_surface;
mod unaccounted_cpu;
mod unmeasured;
mod user_code;
mod values;
mod waits;
mod wasm;
mod wasm_limits;
mod wippy_surface;
