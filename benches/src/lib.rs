//! Warren's benchmark scenarios, measured through the public runtime (the
//! scheduler, the kernel and the host calls included): the criterion
//! benches under `benches/` and the `warren-bench` goals table share them.

pub mod goals;
pub mod lua;
pub mod memory;
pub mod peers;
pub mod scale;
pub mod wasm;

/// The allocator the `warren` binary uses, so benches measure what users
/// run; each bench's `main` applies its settings
/// ([`warren_alloc::configure`]) as `warren`'s does.
pub type Allocator = warren_alloc::Allocator;

/// The median of `values` (the upper one of an even count; NaN for none):
/// what the interleaved comparisons of the criterion benches judge on.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
