//! The fast path of the kernel's payload copy between processes of one VM
//! (`copy_one` in `kernel/messages.lua`): a table copied table to table in C-API
//! code instead of interpreted Lua.
//!
//! `H.copy(t, bytes, max, error_mt)` copies table `t` exactly as the
//! kernel's Lua `copy_table` does (the same data model: strings, numbers,
//! booleans and tables of them; string, number and boolean keys; an error
//! object stays one, any other metatable is dropped) and returns `copy,
//! bytes`, `bytes` being the message's size so far with the table added by
//! the host's `wire_size` rules. It returns nothing when it cannot say yes:
//! a function, thread or userdata inside, a table key, a cycle, nesting of
//! [`MAX_DEPTH`] levels, a tagged (`__warren`) metatable, a size over
//! `max`, or more than [`NATIVE_BYTES`] to copy. The kernel then runs its
//! Lua copy, which decides and builds the error with its path. So this
//! path only ever decides a success, and a success is the Lua copy's.
//!
//! A table of strings, numbers and booleans only (most messages) is
//! checked and counted entry by entry as any other and then cloned whole,
//! array part and node array as they are ([`flat`]); a clone keeps the
//! source's layout, so its length operator finds the source's border
//! where an entry-by-entry copy may find another one (both are borders,
//! as Lua's `#` allows of a table with holes).
//!
//! Guarantees: raw access only (the vendored Lua's `warren_entry` and
//! `warren_pushentry`, `lua_rawget`, `lua_rawset`),
//! so no metamethod runs; no pre-allocation from a guest number (a table
//! is presized from at most [`PRESIZE_SCAN`] of its keys; a clone has the
//! source's room, at most [`CLONE_SLOTS`] slots and about twice its
//! entries, which the sender's own memory holds already); the work of one
//! call is bounded by [`NATIVE_BYTES`] (every table counts 5 bytes, every
//! value at least 1), so a C call that cannot be preempted stays short and
//! large payloads take the preemptible Lua path; allocation happens under
//! the caller's memory limit (a failure raises Lua's memory error, as the
//! Lua copy's would), and nothing on these Rust frames needs dropping, so
//! such an error unwinding through them leaks nothing.

use std::ffi::{c_int, c_uint, c_void};
use std::ptr;

use crate::machine::fast;
use mlua::ffi::{self, lua_State};

use crate::convert::entry::{Entries, Slot};
use crate::convert::{MAX_DEPTH, RUNTIME_OBJECT_TAG};

/// The most bytes (by `wire_size`) one call copies before it hands the
/// payload to the Lua copy: bounds the time a send spends in C code, where
/// the preemption hook cannot stop it (a payload of many small values
/// could otherwise take tens of milliseconds under a large
/// `max_message_bytes`).
pub(crate) const NATIVE_BYTES: i64 = 64 << 10;

/// Keys counted to presize a copy; a larger table grows as the Lua copy's
/// does.
const PRESIZE_SCAN: c_int = 16;

/// The most slots (array part and node array) a table copied in one piece
/// (see [`flat`]) may have: bounds the one `memcpy` a send makes
/// unpreempted, as [`NATIVE_BYTES`] bounds the entries.
const CLONE_SLOTS: c_uint = 1024;

/// Slots a table copied in one piece may have beyond twice its entries:
/// without the bound, a table grown and then emptied would give every
/// copy of it all its room (a thousand slots for one entry, per message).
const CLONE_SLACK: c_uint = 4;

// The vendored Lua's table calls (lwarren.h).
unsafe extern "C-unwind" {
    fn warren_tableslots(l: *mut lua_State, idx: c_int) -> c_uint;
    fn warren_clonetable(l: *mut lua_State, idx: c_int);
}

/// The most table slots (array part and node array, empty ones too) one
/// call reads, over every table it visits: a table visited once per
/// reference, a sparse one of two million slots shared 2,000 times in a
/// message of a few KiB, made one send read four billion slots in C
/// (6.4 s of its worker). Past it the Lua copy, which can be preempted,
/// takes the payload.
const NATIVE_SLOTS: u64 = 1 << 20;

/// Stack slots one nesting level uses at most: the metatable and its tag,
/// the copy, a key, a value, its copy and the key again.
const SLOTS_PER_LEVEL: c_int = 6;

/// The state of one copy.
struct Walk {
    /// The message's bytes so far.
    bytes: i64,
    /// Past this, give the payload to the Lua copy.
    limit: i64,
    /// The tables being copied, outermost first (cycle detection).
    open: [*const c_void; MAX_DEPTH],
    /// Stack index of the kernel's error metatable.
    error_mt: c_int,
    /// Table slots read so far, against [`NATIVE_SLOTS`].
    slots: u64,
}

/// The keys of one table as `wire_size` counts them: a string 5 and its
/// length, a boolean 1, a number 9, except that a key in `1..=#t` is free when
/// every key is one (the table crosses as an array), which is known only
/// at the table's end (the host's walk counts the same way).
struct Keys {
    /// The table's stack index.
    src: c_int,
    /// Its border (`#t`, raw), read at its first number key.
    len: Option<usize>,
    /// Keys in `1..=len` seen so far.
    index: i64,
    /// Whether any other key was seen.
    other: bool,
}

impl Keys {
    /// The keys of the table at `src`, none counted yet.
    fn of(src: c_int) -> Self {
        Keys {
            src,
            len: None,
            index: 0,
            other: false,
        }
    }

    /// The bytes key `k` adds now, or `None` for a key outside the data
    /// model (only the Lua copy reports it).
    ///
    /// # Safety
    ///
    /// `k` is a key of the table at `src`, read by a live traversal.
    unsafe fn count(&mut self, l: *mut lua_State, k: &Slot) -> Option<i64> {
        if !k.is_scalar() {
            return None;
        }
        if k.is_number() {
            // SAFETY: the raw length runs no metamethod.
            let len = *self
                .len
                .get_or_insert_with(|| unsafe { ffi::lua_rawlen(l, self.src) });
            if k.index(len).is_some() {
                self.index += 1;
                return Some(0);
            }
        }
        self.other = true;
        Some(wire(k.count(false)))
    }

    /// What the keys in `1..=len` add at the table's end: nothing for an
    /// array, 9 bytes each in a map.
    fn rest(&self) -> i64 {
        let array = !self.other
            && self
                .len
                .is_some_and(|len| usize::try_from(self.index).is_ok_and(|n| n == len));
        if array || self.index == 0 {
            0
        } else {
            self.index.saturating_mul(9)
        }
    }
}

/// `H.copy(t, bytes, max, error_mt)`; see the module doc.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn copy(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is the calling thread and every index used is checked
    // or made by this function; raw accessors run no Lua code.
    unsafe {
        fast::settop(l, 4);
        if fast::type_of(l, 1) != ffi::LUA_TTABLE {
            return 0;
        }
        let bytes = fast::tointeger(l, 2);
        let max = fast::tointeger(l, 3);
        let Some(bytes) = copy_at(l, 1, bytes, max, 4) else {
            return 0;
        };
        fast::pushinteger(l, bytes);
        2
    }
}

/// `H.table_slots(t)`: the slots of table `t` (its array part and node
/// array, empty ones too), which the kernel's Lua copy counts as the
/// native walks do; 0 for anything else.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn table_slots(l: *mut lua_State) -> c_int {
    // SAFETY: the type is checked before the table is read; nothing raises.
    unsafe {
        let n = if fast::type_of(l, 1) == ffi::LUA_TTABLE {
            warren_tableslots(l, 1)
        } else {
            0
        };
        fast::pushinteger(l, i64::from(n));
        1
    }
}

/// Pushes a copy of the table at absolute index `src` and returns the
/// message's size with it added to `bytes`; `None` when only the Lua copy
/// can decide (see the module doc), leaving leftovers above the stack's
/// top at the call, which the caller discards.
///
/// # Safety
///
/// `src` is a table and `error_mt` the kernel's error metatable, both
/// absolute indices of `l`'s stack.
pub(crate) unsafe fn copy_at(
    l: *mut lua_State,
    src: c_int,
    bytes: i64,
    max: i64,
    error_mt: c_int,
) -> Option<i64> {
    let mut walk = Walk {
        bytes,
        limit: max.min(bytes.saturating_add(NATIVE_BYTES)),
        open: [ptr::null(); MAX_DEPTH],
        error_mt,
        slots: 0,
    };
    // SAFETY: see above.
    unsafe { table(l, src, 0, &mut walk) }.then_some(walk.bytes)
}

/// Pushes a copy of the table at absolute index `src`, or returns `false`
/// (the stack then holds leftovers the caller discards by returning).
///
/// # Safety
///
/// `src` is a table on `l`'s stack; `depth` tables of `w.open` are set.
unsafe fn table(l: *mut lua_State, src: c_int, depth: usize, w: &mut Walk) -> bool {
    // SAFETY: as `copy`: raw accessors on checked indices, the stack grown
    // by `lua_checkstack` before each level.
    unsafe {
        let me = fast::topointer(l, src);
        if depth >= MAX_DEPTH || w.open[..depth].contains(&me) {
            return false;
        }
        if fast::has_room(l, SLOTS_PER_LEVEL) == 0 {
            return false;
        }
        let Some(keep_mt) = metatable(l, src, w.error_mt) else {
            return false;
        };
        w.open[depth] = me;
        w.bytes = w.bytes.saturating_add(5);
        w.slots = w.slots.saturating_add(u64::from(warren_tableslots(l, src)));
        if w.bytes > w.limit || w.slots > NATIVE_SLOTS {
            return false;
        }
        match flat(l, src, w) {
            Flat::Cloned => {
                if keep_mt {
                    fast::pushvalue(l, w.error_mt);
                    ffi::lua_setmetatable(l, -2);
                }
                return true;
            }
            Flat::Refused => return false,
            Flat::Nested => {}
        }
        let (narr, nrec) = presize(l, src);
        ffi::lua_createtable(l, narr, nrec);
        let out = fast::gettop(l);
        let mut keys = Keys::of(src);
        let mut entries = Entries::new(src);
        while entries.next(l) {
            if !entry(l, out, depth, w, &mut keys, &entries) {
                return false;
            }
        }
        w.bytes = w.bytes.saturating_add(keys.rest());
        if w.bytes > w.limit {
            return false;
        }
        if keep_mt {
            fast::pushvalue(l, w.error_mt);
            ffi::lua_setmetatable(l, out);
        }
        true
    }
}

/// What [`flat`] made of a table.
enum Flat {
    /// Its copy is pushed.
    Cloned,
    /// Only the Lua copy can decide (a key or value outside the data
    /// model, a size over the limit); leftovers are on the stack.
    Refused,
    /// It holds a table, or has more room than [`flat`] copies: copy it
    /// entry by entry. The stack and the count are as they were.
    Nested,
}

/// Copies a table of strings, numbers and booleans (the usual message) in
/// one piece: its entries are checked and counted as [`entry`] does, and
/// then its array part and node array are cloned as they are (the
/// vendored Lua's `warren_clonetable`) instead of filled key by key. Only
/// a table whose allocated slots are at most [`CLONE_SLOTS`] and twice its
/// entries (plus [`CLONE_SLACK`]) is cloned, so a table emptied after it
/// grew does not copy its room.
///
/// # Safety
///
/// As [`table`] (the check pushes nothing; the clone one value).
unsafe fn flat(l: *mut lua_State, src: c_int, w: &mut Walk) -> Flat {
    // SAFETY: a traversal in place of an unchanged table (nothing pushed);
    // the clone reads it.
    unsafe {
        let slots = warren_tableslots(l, src);
        if slots > CLONE_SLOTS {
            return Flat::Nested;
        }
        let before = w.bytes;
        let mut live: u32 = 0;
        let mut keys = Keys::of(src);
        let mut entries = Entries::new(src);
        while entries.next(l) {
            live += 1;
            let Some(key) = keys.count(l, &entries.key) else {
                return Flat::Refused;
            };
            w.bytes = w.bytes.saturating_add(key);
            let v = &entries.value;
            if v.is_table() {
                w.bytes = before;
                return Flat::Nested;
            }
            if !v.is_scalar() {
                return Flat::Refused;
            }
            w.bytes = w.bytes.saturating_add(wire(v.count(false)));
            if w.bytes > w.limit {
                return Flat::Refused;
            }
        }
        w.bytes = w.bytes.saturating_add(keys.rest());
        if w.bytes > w.limit {
            return Flat::Refused;
        }
        if slots > live.saturating_mul(2).saturating_add(CLONE_SLACK) {
            w.bytes = before;
            return Flat::Nested;
        }
        warren_clonetable(l, src);
        Flat::Cloned
    }
}

/// A count of bytes as the copy keeps them.
fn wire(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Copies the current entry of `entries` (a traversal of the source)
/// into table `out`.
///
/// # Safety
///
/// As [`table`]; `entries` a live traversal of the table being copied.
unsafe fn entry(
    l: *mut lua_State,
    out: c_int,
    depth: usize,
    w: &mut Walk,
    keys: &mut Keys,
    entries: &Entries,
) -> bool {
    // SAFETY: as `table`; the entry pushed (key, value) is popped by the
    // raw set.
    unsafe {
        let Some(key) = keys.count(l, &entries.key) else {
            return false;
        };
        w.bytes = w.bytes.saturating_add(key);
        if w.bytes > w.limit {
            return false;
        }
        entries.push(l);
        let value = fast::gettop(l);
        if entries.value.is_table() {
            if !table(l, value, depth + 1, w) {
                return false;
            }
            fast::replace(l, value); // key, copy
        } else if entries.value.is_scalar() {
            w.bytes = w.bytes.saturating_add(wire(entries.value.count(false)));
        } else {
            return false;
        }
        // Every value is checked against the limit as it is counted: a
        // number or boolean entry visited last must not carry the copy
        // past `max` (it did, by up to 9 bytes, when only strings were
        // checked here).
        if w.bytes > w.limit {
            return false;
        }
        ffi::lua_rawset(l, out);
        true
    }
}

/// Whether the copy of the table at `src` keeps its metatable (it is the
/// error metatable at `error_mt`); `None` for a tagged metatable, which
/// only the Lua copy reports.
///
/// # Safety
///
/// As [`table`], with two free stack slots.
unsafe fn metatable(l: *mut lua_State, src: c_int, error_mt: c_int) -> Option<bool> {
    // SAFETY: `lua_getmetatable` and `lua_rawget` run no metamethod.
    unsafe {
        if ffi::lua_getmetatable(l, src) == 0 {
            return Some(false);
        }
        ffi::lua_pushstring(l, RUNTIME_OBJECT_TAG.as_ptr());
        // A tag is a string or a number, as the conversion reads it
        // (`convert/from_lua.rs`); any other `__warren` is the process's
        // own data, copied as such: the kernel's refusal joins a tag into
        // its message, which ran a table tag's `__concat` there.
        let tag = ffi::lua_rawget(l, -2);
        let tagged = tag == ffi::LUA_TSTRING || tag == ffi::LUA_TNUMBER;
        let keep = fast::rawequal(l, -2, error_mt) != 0;
        fast::pop(l, 2);
        (!tagged).then_some(keep)
    }
}

/// Array and hash sizes for the copy of the table at `src`, from its first
/// [`PRESIZE_SCAN`] keys; `(0, 0)` for a larger table.
///
/// # Safety
///
/// As [`table`].
unsafe fn presize(l: *mut lua_State, src: c_int) -> (c_int, c_int) {
    // SAFETY: a traversal in place; nothing pushed.
    unsafe {
        let (mut n, mut arr) = (0, 0);
        let scan = usize::try_from(PRESIZE_SCAN).unwrap_or(0);
        let mut entries = Entries::new(src);
        while entries.next(l) {
            n += 1;
            if n > PRESIZE_SCAN {
                return (0, 0);
            }
            if entries.key.index(scan).is_some() {
                arr += 1;
            }
        }
        (arr, n - arr)
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    /// A VM with `kcopy` (the fast path), `ERR` (a stand-in error
    /// metatable) and `same(a, b)` (deep equality, raw, metatables too).
    fn vm() -> Lua {
        let lua = Lua::new();
        // SAFETY: `copy` follows the C function protocol.
        let f = unsafe { lua.create_c_function(super::copy) }.expect("c function");
        lua.globals().set("kcopy", f).expect("global set");
        lua.load(
            r#"
            ERR = { __warren_error = true }
            function same(a, b)
                if type(a) ~= "table" then return rawequal(a, b) end
                if type(b) ~= "table" or rawequal(a, b) then return false end
                if getmetatable(a) ~= getmetatable(b) and getmetatable(a) == ERR then return false end
                for k, v in next, a do if not same(v, rawget(b, k)) then return false end end
                for k in next, b do if rawget(a, k) == nil then return false end end
                return true
            end
            "#,
        )
        .exec()
        .expect("helpers load");
        lua
    }

    fn check(lua: &Lua, code: &str) {
        lua.load(code).exec().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Any value a Lua table can hold, keyed by text, small integers
    /// (array indices among them), floats and booleans.
    fn any_table() -> impl proptest::strategy::Strategy<Value = warren_core::Value> {
        use proptest::prelude::*;
        use warren_core::Value;
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1e6f64..1e6).prop_map(Value::Float),
            ".{0,8}".prop_map(Value::str),
        ];
        let key = prop_oneof![
            ".{0,4}".prop_map(Value::str),
            (-2i64..12).prop_map(Value::Int),
            (-2.0f64..12.0).prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
        ];
        let table = move |inner: BoxedStrategy<Value>| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..12).prop_map(Value::Map),
            ]
        };
        leaf.prop_recursive(3, 40, 12, move |inner| table(inner.boxed()))
            .prop_filter("a table", |v| matches!(v, Value::Array(_) | Value::Map(_)))
    }

    proptest::proptest! {
        /// The same-VM copy counts a table as the host's walk counts what
        /// crosses to another VM or a component (`wire_size`'s rules; a
        /// boolean key 9 bytes, as the walk counts it), so a payload meets
        /// `max_message_bytes` alike on every path.
        #[test]
        fn a_copy_counts_what_the_host_walk_counts(v in any_table()) {
            let lua = vm();
            let t = crate::convert::to_lua(&lua, &v).expect("fits in Lua");
            let copy: mlua::Function = lua.globals().get("kcopy").expect("kcopy");
            let err: mlua::Table = lua.globals().get("ERR").expect("ERR");
            let (_, bytes): (mlua::Value, i64) =
                copy.call((&t, 0, 1 << 20, err)).expect("copies");
            let mut walk = crate::convert::Converter::new(crate::convert::Budget::message(1 << 20));
            walk.convert(&lua, &t, "v").expect("converts");
            proptest::prop_assert_eq!(usize::try_from(bytes).ok(), Some(walk.counted()));
        }
    }

    #[test]
    fn a_copy_is_equal_fresh_and_counted_by_the_wire_size_rules() {
        check(
            &vm(),
            r#"
            local inner = { 1.5, true, "x" }
            local t = { id = 7, kind = "job", v = inner, [2] = false, [true] = "yes", again = inner }
            local c, bytes = kcopy(t, 10, 1 << 20, ERR)
            assert(same(t, c), "the copy has the same contents")
            assert(c.v ~= inner and c.again ~= inner and c.v ~= c.again, "every table is new")
            -- 10 before; a table 5; a string key 5 + its length, a
            -- boolean key 1, a number key 9 (nothing for 1..#t in an
            -- array); a number 9, a boolean 1, a string 5 + length
            -- (`wire_size`'s rules). t's border is 0: [2] counts 9.
            local inner = 5 + 9 + 1 + 6
            local want = 10 + 5 + (7 + 9) + (9 + 8) + (6 + inner) + (9 + 1) + (1 + 8) + (10 + inner)
            assert(bytes == want, "bytes " .. bytes .. " want " .. want)
            "#,
        );
    }

    #[test]
    fn an_error_object_stays_one_and_other_metatables_are_dropped_unrun() {
        check(
            &vm(),
            r#"
            local e = setmetatable({ _kind = "NOT_FOUND" }, ERR)
            local c = kcopy({ e = e }, 0, 1 << 20, ERR)
            assert(getmetatable(c.e) == ERR and c.e._kind == "NOT_FOUND")
            local ran = false
            local trap = function() ran = true error("a metamethod ran") end
            local mt = { __index = trap, __newindex = trap, __pairs = trap, __len = trap, __eq = trap }
            local t = setmetatable({ a = setmetatable({ 1 }, mt) }, mt)
            local c2 = assert(kcopy(t, 0, 1 << 20, ERR))
            assert(not ran and getmetatable(c2) == nil and getmetatable(c2.a) == nil and c2.a[1] == 1)
            "#,
        );
    }

    #[test]
    fn it_says_nothing_for_what_only_the_lua_copy_decides() {
        check(
            &vm(),
            r##"
            local function none(t, max, why)
                local n = select("#", kcopy(t, 0, max or 1 << 20, ERR))
                assert(n == 0, why .. ": the fast path answered")
            end
            none({ f = print }, nil, "a function")
            none({ co = coroutine.create(print) }, nil, "a thread")
            none({ [{}] = 1 }, nil, "a table key")
            none({ [print] = 1 }, nil, "a function key")
            local cyc = {} cyc.self = { back = cyc }
            none(cyc, nil, "a cycle")
            local deep = {} for _ = 1, 64 do deep = { deep } end
            none(deep, nil, "65 levels")
            local ok = {} for _ = 1, 63 do ok = { ok } end
            assert(kcopy(ok, 0, 1 << 20, ERR), "64 levels are copied")
            none(setmetatable({}, { __warren = "channel" }), nil, "a tagged table")
            none({ s = string.rep("x", 100) }, 115, "over max")
            assert(select(2, kcopy({ s = string.rep("x", 100) }, 0, 116, ERR)) == 116, "exactly max")
            none({ s = string.rep("x", 70000) }, nil, "over the native budget")
            none("not a table", nil, "a string")
            "##,
        );
    }

    /// A table of strings, numbers and booleans is cloned whole: equal,
    /// fresh, counted as entry by entry, its border kept; a key emptied
    /// in the source is not in the copy and can be set again; the copy
    /// survives collections in both modes; a flat table too big to clone
    /// is copied entry by entry.
    #[test]
    fn a_flat_table_is_copied_whole_and_counted_the_same() {
        check(
            &vm(),
            r##"
            for _, mode in ipairs({ "incremental", "generational" }) do
                collectgarbage(mode)
                local t = { 1, nil, 3, id = 7, kind = "job", ok = true, [2.5] = "f" }
                local c, bytes = kcopy(t, 0, 1 << 20, ERR)
                assert(same(t, c) and c ~= t and getmetatable(c) == nil)
                -- a map: its keys 1 and 3 (border 3) count 9 each, as 2.5 does
                assert(bytes == 5 + (9 + 9) + (9 + 9) + (7 + 9) + (9 + 8) + (7 + 1) + (9 + 6), "bytes " .. bytes)
                assert(#c == #t, "the source's border")
                local long = string.rep("k", 50)
                local e = { a = 1, gone = "x", [long] = "y" }
                e.gone, e[long] = nil, nil
                local ce = assert(kcopy(e, 0, 1 << 20, ERR))
                local n = 0 for _ in pairs(ce) do n = n + 1 end
                assert(n == 1 and ce.a == 1 and ce.gone == nil and ce[long] == nil)
                collectgarbage()
                ce.gone, ce[long] = 2, 3
                assert(ce.gone == 2 and ce[long] == 3 and e.gone == nil and e[long] == nil)
                c.id, c[1] = 8, "one"
                collectgarbage()
                assert(t.id == 7 and t[1] == 1 and c.kind == "job" and c[2.5] == "f")
                local big = {} for i = 1, 2000 do big[i] = i end
                local cb = assert(kcopy(big, 0, 1 << 20, ERR))
                assert(#cb == 2000 and cb[2000] == 2000 and cb ~= big)
            end
            "##,
        );
    }

    /// A table that grew and was emptied is not cloned with its room: the
    /// copy of its one entry is small.
    #[test]
    fn an_emptied_table_is_not_copied_with_its_room() {
        check(
            &vm(),
            r##"
            local t = {} for i = 1, 1000 do t["k" .. i] = i end
            for k in pairs(t) do t[k] = nil end
            t.a = 1
            collectgarbage() collectgarbage("stop")
            local before = collectgarbage("count")
            local c = assert(kcopy(t, 0, 1 << 20, ERR))
            local grew = (collectgarbage("count") - before) * 1024
            collectgarbage("restart")
            assert(c.a == 1 and next(c, "a") == nil)
            assert(grew < 512, "the copy took " .. grew .. " bytes")
            "##,
        );
    }

    #[test]
    fn a_table_shared_many_times_is_copied_each_time_within_the_budget() {
        check(
            &vm(),
            r##"
            local leaf = { 1, 2, 3 }
            local t = {} for i = 1, 100 do t[i] = leaf end
            local c, bytes = kcopy(t, 0, 1 << 20, ERR)
            assert(#c == 100 and c[1] ~= c[2] and bytes == 5 + 100 * (5 + 27))
            -- A DAG that doubles per level is refused by size, not walked.
            local dag = { 1 } for _ = 1, 40 do dag = { dag, dag } end
            assert(select("#", kcopy(dag, 0, 1 << 20, ERR)) == 0)
            "##,
        );
    }
}
