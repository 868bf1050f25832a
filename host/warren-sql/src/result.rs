//! What statements give back: [`ExecResult`] and the rows of a query, built
//! under a [`ResultLimits`] budget.
//!
//! Guarantees: rows keep result order, NULL columns are absent from their
//! row, a duplicate column name keeps its last value, and a result whose
//! size passes the limit fails with `INVALID` (details `{limit = n}`) before
//! more is built: nothing partial is returned.

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

/// Size a string, map or array header counts as (MessagePack's largest).
const HEADER: usize = 5;

/// Size of a scalar value as `wire_size` counts it.
fn cell_size(v: &Value) -> usize {
    warren_core::limits::wire_size(std::slice::from_ref(v))
}

/// Collects rows in order and refuses to grow past the limit.
#[derive(Debug)]
pub(crate) struct Rows {
    rows: Vec<Value>,
    used: usize,
    limit: usize,
}

impl Rows {
    /// An empty result under `limits`.
    pub(crate) fn new(limits: &ResultLimits) -> Rows {
        Rows {
            rows: Vec::new(),
            used: HEADER,
            limit: limits.max_bytes,
        }
    }

    /// Adds one row of `(column, value)` cells; `None` values (NULL) are
    /// left out and a repeated column name replaces the earlier one.
    pub(crate) fn push<'a>(
        &mut self,
        cells: impl IntoIterator<Item = (&'a str, Option<Value>)>,
    ) -> Result<(), ProcError> {
        let mut row: Vec<(Value, Value)> = Vec::new();
        let mut size = HEADER;
        for (name, value) in cells {
            if let Some(at) = row.iter().position(|(k, _)| k.as_str() == Some(name)) {
                let (k, old) = row.remove(at);
                size -= cell_size(&k) + cell_size(&old);
            }
            let Some(value) = value else { continue };
            let key = Value::str(name);
            size += cell_size(&key) + cell_size(&value);
            self.check(size)?;
            row.push((key, value));
        }
        self.used += size;
        self.check(0)?;
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
        let mut rows = Rows::new(&ResultLimits { max_bytes: 1000 });
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
    fn growth_past_the_limit_fails_with_the_limit_in_details() {
        let mut rows = Rows::new(&ResultLimits { max_bytes: 40 });
        rows.push([("a", Some(Value::Int(1)))]).expect("fits");
        let err = rows
            .push([("a", Some(Value::str("x".repeat(50))))])
            .expect_err("too big");
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert_eq!(
            err.details.expect("details").get("limit"),
            Some(&Value::Int(40))
        );
    }
}
