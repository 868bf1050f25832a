//! The Lua VMs' allocator: mlua's hook, its memory count and limit, on a
//! path one call long.
//!
//! mlua creates every VM with its own allocator hook, which keeps the
//! VM's memory count and limit (`used_memory`, `set_memory_limit`: the
//! ceilings of [`crate::quota`]) and allocates through Rust's global
//! allocator. Each Lua allocation was four calls (Lua's `luaM_malloc_`,
//! mlua's hook, `__rust_alloc`, the global allocator) before mimalloc's,
//! about 100 instructions: 13 allocations and frees per one-way message,
//! 70 per spawn.
//!
//! [`install`] makes the vendored Lua allocate every new VM of mlua's
//! through [`allocate`] instead (`warren_set_alloc`, `lwarren.h`): the
//! same count and limit, kept in the same place (mlua's memory state,
//! [`Budget`]), so mlua's `used_memory` and `set_memory_limit` are
//! unchanged, and the block straight from mimalloc
//! ([`warren_alloc::block`]). Blocks under a megabyte, nearly all of
//! them, Lua's `luaM_malloc_`, `luaM_realloc_` and `luaM_free_` make,
//! resize and free themselves by the same rule, with mimalloc's functions
//! ([`warren_alloc::block::SMALL`]), without a call to [`allocate`].
//! mlua still finds its state by its own hook, which `lua_getallocf`
//! still answers. A VM allocates this way or mlua's for its whole life,
//! its first block to its last.
//!
//! One difference: a block mimalloc cannot give fails the allocation
//! (Lua raises its memory error), where mlua's hook aborted the process.

use std::ffi::c_void;
use std::sync::Once;

use mlua::ffi::{lua_Alloc, lua_getallocf};
use mlua::{Lua, LuaOptions, StdLib};

unsafe extern "C" {
    fn warren_set_alloc(
        expect: lua_Alloc,
        used: lua_Alloc,
        small: *const warren_alloc::block::Small,
    );
}

/// mlua's memory state (`mlua::memory::MemoryState` of mlua 0.12, without
/// Luau), whose address is the `ud` of mlua's hook: the bytes its VM
/// holds and its limit (0: none). The vendored Lua reads it as its
/// `warren_Budget` (`lwarren.h`). The tests below check this reading
/// against mlua's own answers; an mlua whose state differs fails them.
#[repr(C)]
struct Budget {
    used: isize,
    limit: isize,
    /// Set only by mlua for Lua 5.1 and Luau; honoured as mlua does.
    ignore_limit: bool,
}

/// Lua's allocation function (`lua_Alloc`) on mlua's [`Budget`], with
/// the contract of mlua's: frees always succeed; growth past a non-zero
/// limit fails, and so does a block mimalloc cannot give.
///
/// # Safety
///
/// `ud` is the budget of the VM; `ptr`, with `osize`, is a block of this
/// function's or null (`osize` is then a type tag).
unsafe extern "C" fn allocate(
    ud: *mut c_void,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    // SAFETY: see above: the VM's budget, used by its one thread.
    let budget = unsafe { &mut *ud.cast::<Budget>() };
    let old = if ptr.is_null() { 0 } else { osize };
    if nsize == 0 {
        if !ptr.is_null() {
            // SAFETY: a block of `osize` bytes (see above).
            unsafe { warren_alloc::block::free(ptr.cast(), osize) };
            budget.used -= old as isize;
        }
        return std::ptr::null_mut();
    }
    let Ok(new) = isize::try_from(nsize) else {
        return std::ptr::null_mut();
    };
    let grows = new - old as isize;
    if grows > 0
        && budget.limit > 0
        && budget.used.saturating_add(grows) > budget.limit
        && !budget.ignore_limit
    {
        return std::ptr::null_mut();
    }
    // SAFETY: a new block, or block `ptr` of `osize` bytes (see above).
    let block = unsafe {
        if ptr.is_null() {
            warren_alloc::block::alloc(nsize)
        } else {
            warren_alloc::block::realloc(ptr.cast(), osize, nsize)
        }
    };
    if !block.is_null() {
        budget.used += grows;
    }
    block.cast()
}

/// Makes every VM mlua creates from now on allocate through [`allocate`];
/// once per process, before the first VM of the runtime.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a VM with no library, used for nothing but its hook.
        let probe = unsafe { Lua::unsafe_new_with(StdLib::NONE, LuaOptions::default()) };
        let mut hook = None;
        // SAFETY: `exec_raw` hands over the probe's state, alive here.
        let _ = unsafe {
            probe.exec_raw::<()>((), |l| {
                hook = Some(lua_getallocf(l, std::ptr::null_mut()));
            })
        };
        if let Some(hook) = hook {
            // SAFETY: both are allocation functions of the same `ud`
            // (mlua's memory state, see `Budget`), and `warren_set_alloc`
            // may be called while VMs exist.
            unsafe { warren_set_alloc(hook, allocate, &warren_alloc::block::SMALL) };
        }
    });
}

#[cfg(test)]
mod tests;
