//! Copying values between Lua and the host's [`Value`] trees.
//!
//! Only data crosses: nil, booleans, integers, floats, strings and tables of
//! those. Functions, threads, userdata, channels and cycles are refused with
//! an error naming the offending path (`payload.items[3]: function cannot be
//! sent`). Nesting is capped at [`MAX_DEPTH`] so a hostile value cannot
//! overflow the host's stack. The path is built only when an error unwinds,
//! so a successful copy allocates nothing but the copy.
//!
//! Guarantees against hostile tables: no metamethod runs (raw length and
//! raw iteration only); nothing is pre-allocated from a number the guest
//! controls (a lying length, a border of 2^44); and every copy has a byte
//! budget counted as [`warren_core::limits::wire_size`] counts, checked as it
//! goes, so a table that shares one sub-table a million times (a DAG that
//! would copy exponentially) fails as soon as the budget is passed.

pub(crate) mod entry;
mod from_lua;
pub(crate) use from_lua::{push_keys, push_keys_made};
mod to_lua;

pub(crate) use to_lua::{push_payload, push_protected};

use std::ffi::c_void;

use mlua::{Lua, Table, Value as LuaValue};
use warren_core::{ErrorKind, Packed, Value};

/// Metatable field that marks the kernel's runtime objects (channels,
/// timers, ...); its value names the object in errors.
pub const RUNTIME_OBJECT_TAG: &std::ffi::CStr = c"__warren";

/// Metatable field that marks the kernel's error objects: they cross as a
/// map tagged with [`ERROR_KEY`] and come back as error objects.
pub const ERROR_TAG: &std::ffi::CStr = c"__warren_error";

/// The fields of the kernel's error object (`_kind`, `_message`, ...),
/// read by the conversion out of the VM and written by the one back in.
pub(crate) mod error_field {
    use std::ffi::CStr;
    pub(crate) const KIND: &CStr = c"_kind";
    pub(crate) const MESSAGE: &CStr = c"_message";
    pub(crate) const RETRYABLE: &CStr = c"_retryable";
    pub(crate) const DETAILS: &CStr = c"_details";
    pub(crate) const TEXT: &CStr = c"_text";
    pub(crate) const STACK: &CStr = c"_stack";
}

/// The key that marks an error object in a map: `{"@error": true, kind,
/// message, retryable, details, text?}` (keys starting with `@` are
/// reserved, as topics are). `kind` uses the host's names (`NOT_FOUND`);
/// `retryable` is nil when the error does not say; `text` is the chained
/// text of a wrapped error.
pub const ERROR_KEY: &str = "@error";

/// The host's name of a Lua error kind (other kinds are kept as they are).
fn host_kind(lua: Vec<u8>) -> Vec<u8> {
    match ErrorKind::ALL
        .iter()
        .find(|k| k.lua_name().as_bytes() == lua.as_slice())
    {
        Some(kind) => kind.name().as_bytes().to_vec(),
        None => lua,
    }
}

/// The Lua name of a host error kind (other kinds are kept as they are).
pub(crate) fn lua_kind(host: &[u8]) -> &[u8] {
    match ErrorKind::ALL.iter().find(|k| k.name().as_bytes() == host) {
        Some(kind) => kind.lua_name().as_bytes(),
        None => host,
    }
}

/// Deepest table nesting that may cross a process boundary; deeper values
/// are refused instead of recursing the host's native stack.
pub const MAX_DEPTH: usize = 64;

/// Why a Lua value cannot cross a process boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConvertError {
    /// Where in the value, e.g. `payload.items[3]`.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
    /// Whether the value was larger than the copy's budget (rather than
    /// of a kind that cannot be copied).
    pub over_budget: bool,
    /// Bytes counted when the copy stopped (at least the value's size
    /// when it was over budget).
    pub counted: usize,
}

/// An error on its way up: path segments innermost first.
struct Failure {
    segments: Vec<String>,
    reason: String,
    over_budget: bool,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            segments: Vec::new(),
            reason: reason.into(),
            over_budget: false,
        }
    }

    /// The same failure, one level out: `segment` names the key it was
    /// under.
    fn at(mut self, segment: String) -> Self {
        self.segments.push(segment);
        self
    }

    fn finish(self, root: &str) -> ConvertError {
        let mut path = root.to_owned();
        for segment in self.segments.iter().rev() {
            path.push_str(segment);
        }
        ConvertError {
            path,
            reason: self.reason,
            over_budget: self.over_budget,
            counted: 0,
        }
    }
}

/// A copy's byte budget: what the value may count as, and the limit's
/// name for the error.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most bytes the copied value may count as.
    pub bytes: usize,
    /// The limit's name, quoted in the error (`max_message_bytes`).
    pub name: &'static str,
    /// Least bytes one count (a value, a key, a table) takes of the
    /// budget: 1 for a message, whose size is its wire size; more where
    /// each value costs more than its wire bytes (`json.encode` builds two
    /// trees and its text: a boolean counted as 1 byte let two million of
    /// them take some 190 MB of host memory under a 2 MiB limit).
    pub floor: usize,
}

impl Budget {
    /// A budget of `max_message_bytes`.
    pub fn message(bytes: usize) -> Self {
        Budget {
            bytes,
            name: "max_message_bytes",
            floor: 1,
        }
    }
}

/// Copies one or more values under one shared budget.
pub struct Converter {
    budget: Budget,
    used: usize,
    tables: usize,
    /// Tables entered, retries included (work done, for the tests).
    entered: usize,
    /// Table slots read, retries included.
    slots: usize,
}

impl Converter {
    /// A converter with `budget` for everything it copies.
    pub fn new(budget: Budget) -> Self {
        Converter {
            budget,
            used: 0,
            tables: 0,
            entered: 0,
            slots: 0,
        }
    }

    /// Tables entered so far, counting every visit (the work done).
    #[cfg(test)]
    pub(crate) fn entered(&self) -> usize {
        self.entered
    }

    /// The bytes counted so far against the budget (what a message of the
    /// values copied counts as against `max_message_bytes`).
    pub fn counted(&self) -> usize {
        self.used
    }

    /// Copies `v`; `root` names it in errors.
    pub fn convert(&mut self, lua: &Lua, v: &LuaValue, root: &str) -> Result<Value, ConvertError> {
        self.copy(root, |walk| {
            // A scalar (most spawn arguments and many payloads) needs no
            // walk of the Lua stack, nor its protected call: the same counts.
            scalar(v, walk).unwrap_or_else(|| {
                from_lua::walk(lua, v, walk).unwrap_or_else(|e| Err(Failure::new(e.to_string())))
            })
        })
    }

    /// Copies the scalar `v`, counted as [`convert`](Self::convert) counts
    /// the same Lua value; `root` names it in errors.
    pub(crate) fn convert_scalar(
        &mut self,
        v: Scalar<'_>,
        root: &str,
    ) -> Result<Value, ConvertError> {
        self.copy(root, |walk| count_scalar(v, walk))
    }

    /// Copies the value at absolute index `idx` of `l`, counted as
    /// [`convert`](Self::convert) counts the same value; the table of field
    /// names is at absolute index `keys` ([`from_lua::push_keys`]);
    /// `root` names it in errors.
    ///
    /// # Safety
    ///
    /// `l` is a running state whose slot `idx` holds a value; nothing here
    /// raises a Lua error (so it may run outside a protected call).
    pub(crate) unsafe fn convert_at(
        &mut self,
        l: *mut mlua::ffi::lua_State,
        idx: std::ffi::c_int,
        keys: std::ffi::c_int,
        root: &str,
    ) -> Result<Value, ConvertError> {
        // SAFETY: see above.
        self.copy(root, |walk| unsafe {
            from_lua::walk_at(l, idx, keys, walk)
        })
    }

    /// Encodes the value at absolute index `idx` of `l` as MessagePack,
    /// counted and refused as [`convert_at`](Self::convert_at) counts and
    /// refuses it: the bytes `warren_core::msgpack::encode` writes for the
    /// value `convert_at` answers, with the size counted (its
    /// [`wire_size`](warren_core::limits::wire_size)), made without that
    /// value.
    ///
    /// # Safety
    ///
    /// As [`convert_at`](Self::convert_at).
    pub(crate) unsafe fn pack_at(
        &mut self,
        l: *mut mlua::ffi::lua_State,
        idx: std::ffi::c_int,
        keys: std::ffi::c_int,
        root: &str,
    ) -> Result<Packed, ConvertError> {
        let before = self.used;
        let mut out = Vec::with_capacity(warren_core::msgpack::ENCODE_ROOM);
        // SAFETY: see above.
        self.copy(root, |walk| unsafe {
            from_lua::pack_at(l, idx, keys, walk, &mut out)
        })?;
        Ok(Packed::new(out, self.used - before))
    }

    /// Runs `copy` with a walk that continues this converter's counts, keeps
    /// what it counted, and names a failure by `root`.
    fn copy<T>(
        &mut self,
        root: &str,
        copy: impl FnOnce(&mut Walk) -> Result<T, Failure>,
    ) -> Result<T, ConvertError> {
        let mut walk = Walk {
            open: Open::new(),
            used: self.used,
            budget: self.budget,
            tables: self.tables,
            entered: self.entered,
            slots: self.slots,
        };
        let result = copy(&mut walk);
        self.used = walk.used;
        self.tables = walk.tables;
        self.entered = walk.entered;
        self.slots = walk.slots;
        result.map_err(|f| {
            let mut err = f.finish(root);
            err.counted = walk.used;
            err
        })
    }
}

/// A scalar read where it lies (a raw host function's argument), for
/// [`Converter::convert_scalar`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scalar<'a> {
    /// Nil.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string's bytes.
    Str(&'a [u8]),
}

/// `v` as a value, counted as the walk counts it (see `from_lua`).
fn count_scalar(v: Scalar<'_>, walk: &mut Walk) -> Result<Value, Failure> {
    match v {
        Scalar::Nil => walk.count(1).map(|()| Value::Nil),
        Scalar::Bool(b) => walk.count(1).map(|()| Value::Bool(b)),
        Scalar::Int(i) => walk.count(9).map(|()| Value::Int(i)),
        Scalar::Float(n) => walk.count(9).map(|()| Value::Float(n)),
        Scalar::Str(bytes) => walk
            .count(5 + bytes.len())
            .map(|()| Value::Str(bytes.to_vec())),
    }
}

/// Budget bytes per table a copy may visit: a table's own wire size is 5
/// bytes, but visiting one costs far more work than copying 5 bytes, so a
/// value made of many tiny (or shared) tables is cut off by their count.
const BYTES_PER_TABLE: usize = 16;

/// Table slots (array part and node array, empty ones too) a walk may
/// read per budget byte: each table is read once per reference to it, so
/// a sparse table of two million slots shared 2,000 times, a message of a
/// few KiB, made one send or `json.encode` read four billion slots in one
/// C call (3 to 7 s of its worker). 16 per byte is 16 M slots for a
/// 1 MiB budget, tens of milliseconds.
const SLOTS_PER_BYTE: usize = 16;

/// The tables a walk is inside, outermost first: at most [`MAX_DEPTH`],
/// held inline, so a walk allocates nothing for them (a `Vec` cost an
/// allocation and a free per payload with a table, about 150
/// instructions).
struct Open {
    tables: [*const c_void; MAX_DEPTH],
    len: usize,
}

impl Open {
    fn new() -> Self {
        Open {
            tables: [std::ptr::null(); MAX_DEPTH],
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn contains(&self, table: *const c_void) -> bool {
        self.tables
            .get(..self.len)
            .unwrap_or_default()
            .contains(&table)
    }

    /// Opens `table`; a walk at [`MAX_DEPTH`] has refused it before
    /// (nothing is opened past it).
    fn push(&mut self, table: *const c_void) {
        if let Some(slot) = self.tables.get_mut(self.len) {
            *slot = table;
            self.len += 1;
        }
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
}

struct Walk {
    open: Open,
    used: usize,
    budget: Budget,
    /// Tables visited, against `budget.bytes / BYTES_PER_TABLE`.
    tables: usize,
    /// Tables entered, never given back (a budget's count is, when an
    /// encoding is written again): the work a copy did.
    entered: usize,
    /// Table slots read, never given back, against
    /// `budget.bytes * SLOTS_PER_BYTE`.
    slots: usize,
}

/// `v` as a value when it is a scalar, counted as the walk counts it (see
/// `from_lua`); `None` for anything the walk must look at.
fn scalar(v: &LuaValue, walk: &mut Walk) -> Option<Result<Value, Failure>> {
    Some(match v {
        LuaValue::Nil => count_scalar(Scalar::Nil, walk),
        LuaValue::Boolean(b) => count_scalar(Scalar::Bool(*b), walk),
        LuaValue::Integer(i) => count_scalar(Scalar::Int(*i), walk),
        LuaValue::Number(n) => count_scalar(Scalar::Float(*n), walk),
        LuaValue::String(s) => count_scalar(Scalar::Str(&s.as_bytes()), walk),
        _ => return None,
    })
}

impl Walk {
    /// Counts `n` more table slots read; fails once past
    /// [`SLOTS_PER_BYTE`] per budget byte.
    fn read_slots(&mut self, n: std::ffi::c_uint) -> Result<(), Failure> {
        self.slots = self
            .slots
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
        let most = self
            .budget
            .bytes
            .saturating_mul(SLOTS_PER_BYTE)
            .max(1 << 16);
        if self.slots > most {
            let mut failure = Failure::new(format!(
                "the value's tables have more than {most} slots to read (empty ones too, each table once per reference to it), more than {} allows ({} bytes)",
                self.budget.name, self.budget.bytes
            ));
            failure.over_budget = true;
            return Err(failure);
        }
        Ok(())
    }

    /// Counts `bytes` more; fails once past the budget.
    fn count(&mut self, bytes: usize) -> Result<(), Failure> {
        // An array index counts nothing: the floor is for what is counted.
        let bytes = if bytes == 0 {
            0
        } else {
            bytes.max(self.budget.floor)
        };
        self.used = self.used.saturating_add(bytes);
        if self.used > self.budget.bytes {
            let mut failure = Failure::new(format!(
                "the value exceeds {} ({})",
                self.budget.name, self.budget.bytes
            ));
            failure.over_budget = true;
            return Err(failure);
        }
        Ok(())
    }
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Copies a Lua value into a host value within `budget`; `root` names it
/// in errors.
pub fn from_lua(
    lua: &Lua,
    v: &LuaValue,
    root: &str,
    budget: Budget,
) -> Result<Value, ConvertError> {
    Converter::new(budget).convert(lua, v, root)
}

/// Copies a host value into a fresh Lua value.
pub fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    to_lua::to_lua_in(lua, v, None)
}

/// Copies a host value into a fresh Lua value; maps tagged as error
/// objects become error objects with `error_mt` (the kernel's).
pub fn to_lua_with_errors(lua: &Lua, v: &Value, error_mt: &Table) -> mlua::Result<LuaValue> {
    to_lua::to_lua_in(lua, v, Some(error_mt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget no test value reaches.
    pub(super) const BIG: Budget = Budget {
        bytes: 1 << 20,
        name: "test budget",
        floor: 1,
    };

    /// The value `src` returns.
    pub(super) fn eval(lua: &Lua, src: &str) -> LuaValue {
        lua.load(src).eval().expect("valid Lua")
    }

    #[test]
    fn arrays_maps_and_mixed_tables() {
        let lua = Lua::new();
        let arr = from_lua(&lua, &eval(&lua, "return {1, 'two', 3.5}"), "p", BIG).expect("array");
        assert_eq!(
            arr,
            Value::Array(vec![Value::Int(1), Value::str("two"), Value::Float(3.5)])
        );
        let holes =
            from_lua(&lua, &eval(&lua, "return {[1] = 1, [3] = 3}"), "p", BIG).expect("map");
        assert!(
            matches!(holes, Value::Map(ref m) if m.len() == 2),
            "{holes:?}"
        );
        let mixed = from_lua(&lua, &eval(&lua, "return {1, 2, x = 'y'}"), "p", BIG).expect("map");
        assert!(
            matches!(mixed, Value::Map(ref m) if m.len() == 3),
            "{mixed:?}"
        );
        let back = to_lua(&lua, &arr).expect("to lua");
        assert_eq!(from_lua(&lua, &back, "p", BIG).expect("again"), arr);
    }

    #[test]
    fn errors_name_the_path() {
        let lua = Lua::new();
        let err = from_lua(
            &lua,
            &eval(&lua, "return {a = {[\"b c\"] = {print}}}"),
            "payload",
            BIG,
        )
        .expect_err("function");
        assert_eq!(
            err.to_string(),
            "payload.a[\"b c\"][1]: function cannot be sent"
        );
        let deep = eval(
            &lua,
            "local t = {} local c = t for i = 1, 100 do c.n = {} c = c.n end return t",
        );
        let err = from_lua(&lua, &deep, "v", BIG).expect_err("too deep");
        assert!(err.reason.contains("deeper than"), "{err}");
        let key =
            from_lua(&lua, &eval(&lua, "return {[{}] = 1}"), "v", BIG).expect_err("table key");
        assert_eq!(key.reason, "a table key cannot be sent");
    }
}
