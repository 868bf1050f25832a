//! Statement parameters, already typed by the language binding.
//!
//! A [`Param`] says how a value is sent; each engine maps it (SQLite binds
//! it natively, PostgreSQL sends it with the type of modules.md's table).

/// One positional parameter (`?` for SQLite, `$n` for PostgreSQL).
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// A boolean (PostgreSQL boolean; SQLite 1 / 0).
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text (bytes as given; PostgreSQL infers the column's type from it).
    Text(Vec<u8>),
    /// A blob / bytea.
    Blob(Vec<u8>),
}

impl Param {
    /// A text parameter from a string.
    pub fn text(s: impl Into<String>) -> Param {
        Param::Text(s.into().into_bytes())
    }
}
