//! What statements give back: [`ExecResult`] and the rows of a query, built
//! under a [`ResultLimits`] budget.
//!
//! Guarantees: rows keep result order, NULL columns are absent from their
//! row, a duplicate column name keeps its last value, and a result whose
//! size (about the host memory its value tree holds) passes the limit
//! fails with `INVALID` (details `{limit = n}`) before more is built:
//! nothing partial is returned.

use warren_core::{ErrorKind, ProcError, Value};

use crate::config::ResultLimits;

/// What `execute` reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// Rows changed by the (last) statement.
    pub rows_affected: i64,
    /// SQLite's rowid of the last insert; always 0 on PostgreSQL.
    pub last_insert_id: i64,
}

impl ExecResult {
    /// `{rows_affected = n, last_insert_id = n}`.
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            (Value::str("rows_affected"), Value::Int(self.rows_affected)),
            (
                Value::str("last_insert_id"),
                Value::Int(self.last_insert_id),
            ),
        ])
    }
}

/// Host bytes of one value slot (in the result array, or a key or a value
/// in a row's map).
const SLOT: usize = std::mem::size_of::<Value>();

/// Bytes the allocator adds to each heap block (its header and rounding),
/// about: a one-byte string costs a block, not a byte.
const BLOCK: usize = 16;

/// Host bytes a string of `len` bytes holds on the heap.
fn heap(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.saturating_add(BLOCK)
    }
}

/// Host bytes a row's cell costs: its key and value slots in the row's
/// map, a copy of the column name and the value's heap (`value_heap`, the
/// length of a string or blob; 0 for a number or NULL).
pub(crate) fn cell_cost(name_len: usize, value_heap: usize) -> usize {
    (2 * SLOT)
        .saturating_add(heap(name_len))
        .saturating_add(heap(value_heap))
}

/// Host bytes a row costs beyond its cells: its slot in the result array
/// and its map's block.
const ROW: usize = SLOT + BLOCK;

/// The heap a cell value holds (see [`cell_cost`]).
fn value_heap(v: &Value) -> usize {
    match v {
        Value::Str(b) => b.len(),
        _ => 0,
    }
}

/// Collects rows in order and refuses to grow past the limit. Rows are
/// charged at about what the host holds for them (the value tree, one
/// allocation per string), not their wire size: a one-integer row is 19
/// bytes of MessagePack but over 100 bytes of host memory, and 16
/// processes each holding a 600,000-row result took 1.3 GB while every
/// result was under its 16 MiB limit as wire size counts it.
#[derive(Debug)]
pub(crate) struct Rows {
    rows: Vec<Value>,
    used: usize,
    limit: usize,
    /// Where the rows' bytes are taken from, as each is kept.
    room: Option<std::sync::Arc<crate::ResultRoom>>,
}

impl Rows {
    /// An empty result under `limits`.
    pub(crate) fn new(limits: &ResultLimits) -> Rows {
        Rows {
            rows: Vec::new(),
            used: SLOT,
            limit: limits.max_bytes,
            room: limits.room.clone(),
        }
    }

    /// Whether a row whose cells read so far cost `pending` (as
    /// [`cell_cost`] counts them) still fits: checked before a cell is
    /// copied out of the engine, so a value past the limit is never
    /// copied. The error is the one [`Rows::push`] gives.
    pub(crate) fn admit(&self, pending: usize) -> Result<(), ProcError> {
        self.check(ROW.saturating_add(pending))
    }

    /// Adds one row of `(column, value)` cells; `None` values (NULL) are
    /// left out and a repeated column name replaces the earlier one.
    pub(crate) fn push<'a>(
        &mut self,
        cells: impl IntoIterator<Item = (&'a str, Option<Value>)>,
    ) -> Result<(), ProcError> {
        let mut row: Vec<(Value, Value)> = Vec::new();
        let mut size = ROW;
        for (name, value) in cells {
            if let Some(at) = row.iter().position(|(k, _)| k.as_str() == Some(name)) {
                let (_, old) = row.remove(at);
                size -= cell_cost(name.len(), value_heap(&old));
            }
            let Some(value) = value else { continue };
            size += cell_cost(name.len(), value_heap(&value));
            self.check(size)?;
            row.push((Value::str(name), value));
        }
        self.check(size)?;
        if let Some(room) = &self.room {
            room.take(u64::try_from(size).unwrap_or(u64::MAX))?;
        }
        self.used += size;
        self.rows.push(Value::Map(row));
        Ok(())
    }

    fn check(&self, extra: usize) -> Result<(), ProcError> {
        if self.used.saturating_add(extra) > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(())
    }

    /// The rows, as an array value.
    pub(crate) fn finish(self) -> Value {
        Value::Array(self.rows)
    }
}

/// The `INVALID` error of a result over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> ProcError {
    let mut err = ProcError::new(
        ErrorKind::Invalid,
        format!("query result exceeds the memory limit of {limit} bytes"),
    );
    err.details = Some(Value::Map(vec![(
        Value::str("limit"),
        Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
    )]));
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_columns_keep_the_last_and_nulls_are_absent() {
        let mut rows = Rows::new(&ResultLimits::bytes(1000));
        rows.push([
            ("a", Some(Value::Int(1))),
            ("b", None),
            ("a", Some(Value::Int(2))),
        ])
        .expect("fits");
        let v = rows.finish();
        let Value::Array(items) = &v else {
            panic!("array")
        };
        assert_eq!(items[0], Value::Map(vec![(Value::str("a"), Value::Int(2))]));
        assert_eq!(
            warren_core::limits::wire_size(std::slice::from_ref(&v)),
            5 + 5 + 6 + 9
        );
    }

    #[test]
    fn rows_are_charged_at_their_host_size() {
        let mut rows = Rows::new(&ResultLimits::bytes(1 << 20));
        rows.push([("a", Some(Value::Int(1)))]).expect("fits");
        // A one-integer row: 19 bytes of MessagePack, over 100 on the host.
        assert_eq!(rows.used - SLOT, ROW + 2 * SLOT + 1 + BLOCK);
        assert!(rows.used - SLOT > 100, "{}", rows.used);
        let before = rows.used;
        rows.push([("s", Some(Value::str("x".repeat(1000))))])
            .expect("fits");
        assert_eq!(rows.used - before, ROW + cell_cost(1, 1000));
    }

    #[test]
    fn a_cell_past_the_limit_is_refused_before_it_is_read() {
        let rows = Rows::new(&ResultLimits::bytes(1000));
        assert!(rows.admit(cell_cost(1, 100)).is_ok());
        let err = rows.admit(cell_cost(1, 1000)).expect_err("too big");
        assert_eq!(err.kind, ErrorKind::Invalid);
    }

    #[test]
    fn growth_past_the_limit_fails_with_the_limit_in_details() {
        let mut rows = Rows::new(&ResultLimits::bytes(200));
        rows.push([("a", Some(Value::Int(1)))]).expect("fits");
        let err = rows
            .push([("a", Some(Value::str("x".repeat(50))))])
            .expect_err("too big");
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(
            err.details.expect("details").get("limit"),
            Some(&Value::Int(200))
        );
    }
}
