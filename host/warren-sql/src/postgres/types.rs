//! PostgreSQL parameters out and column values in (modules.md §1 tables).
//!
//! Parameters: booleans as `boolean`, integers as `int8`, floats as
//! `float8`, blobs as `bytea`, all binary; text and NULL go with the type
//! left unspecified (text sent in text format), so the server infers the
//! column's type and its input function applies (a string into a
//! `timestamptz`, `uuid` or `jsonb` column works, as with libpq).
//!
//! Columns: results arrive in binary; the types of the spec's table are
//! decoded exactly (numeric as its exact decimal, timestamps as RFC 3339
//! UTC whole seconds, uuid hyphenated, jsonb without its version byte).
//! Best effort for others: `time`, `interval`, `inet`/`cidr`, `"char"`,
//! `oid`, domains (as their base) and enums get their text form; any other
//! type comes back as the bytes of its binary form (a known gap).

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use warren_core::Value;

use crate::civil::{date_text, time_text, timestamp_text};
use crate::numeric::numeric_text;
use crate::param::Param;

type BoxError = Box<dyn Error + Sync + Send>;

/// The type a parameter is declared with (oid 0: inferred by the server).
pub(crate) fn param_type(p: &Param) -> Type {
    match p {
        Param::Bool(_) => Type::BOOL,
        Param::Int(_) => Type::INT8,
        Param::Float(_) => Type::FLOAT8,
        Param::Blob(_) => Type::BYTEA,
        Param::Null | Param::Text(_) => {
            Type::new("unspecified".into(), 0, Kind::Pseudo, "pg_catalog".into())
        }
    }
}

impl ToSql for Param {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Null => return Ok(IsNull::Yes),
            Param::Bool(b) => out.put_u8(u8::from(*b)),
            Param::Int(i) => out.put_i64(*i),
            Param::Float(f) => out.put_f64(*f),
            Param::Text(t) | Param::Blob(t) => out.extend_from_slice(t),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            Param::Text(_) => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

/// One column value of a row, decoded (`None` for NULL).
pub(crate) struct Cell(pub(crate) Option<Value>);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        decode(ty, raw).map(|v| Cell(Some(v)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], BoxError> {
    raw.get(..N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| "value too short for its type".into())
}

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    match ty.kind() {
        Kind::Domain(base) => return decode(base, raw),
        Kind::Enum(_) => return Ok(Value::Str(raw.to_vec())),
        _ => {}
    }
    let text = |s: String| Ok(Value::str(s));
    match *ty {
        Type::BOOL => Ok(Value::Bool(fixed::<1>(raw)?[0] != 0)),
        Type::INT2 => Ok(Value::Int(i16::from_be_bytes(fixed(raw)?).into())),
        Type::INT4 => Ok(Value::Int(i32::from_be_bytes(fixed(raw)?).into())),
        Type::INT8 => Ok(Value::Int(i64::from_be_bytes(fixed(raw)?))),
        Type::OID => Ok(Value::Int(u32::from_be_bytes(fixed(raw)?).into())),
        Type::FLOAT4 => Ok(Value::Float(f32::from_be_bytes(fixed(raw)?).into())),
        Type::FLOAT8 => Ok(Value::Float(f64::from_be_bytes(fixed(raw)?))),
        Type::NUMERIC => text(numeric_text(raw)?),
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => Ok(Value::Str(rest.to_vec())),
            _ => Err("unsupported jsonb version".into()),
        },
        Type::UUID => text(uuid_text(fixed::<16>(raw)?)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            text(timestamp_text(i64::from_be_bytes(fixed(raw)?)))
        }
        Type::DATE => text(date_text(i32::from_be_bytes(fixed(raw)?))),
        Type::TIME => text(time_text(i64::from_be_bytes(fixed(raw)?))),
        Type::INTERVAL => text(interval_text(raw)?),
        Type::INET | Type::CIDR => text(inet_text(raw)?),
        // text, varchar, bpchar, name, json, xml, "char", bytea, unknown,
        // citext and anything else: the bytes as they came.
        _ => Ok(Value::Str(raw.to_vec())),
    }
}

fn uuid_text(b: [u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// PostgreSQL's default (`postgres`) interval style: `1 year 2 mons 3 days
/// 04:05:06`.
fn interval_text(raw: &[u8]) -> Result<String, BoxError> {
    let micros = i64::from_be_bytes(fixed(raw)?);
    let days = i32::from_be_bytes(fixed(raw.get(8..).unwrap_or_default())?);
    let months = i32::from_be_bytes(fixed(raw.get(12..).unwrap_or_default())?);
    let mut parts = Vec::new();
    let (years, mons) = (months / 12, months % 12);
    for (n, one, many) in [
        (years, "year", "years"),
        (mons, "mon", "mons"),
        (days, "day", "days"),
    ] {
        if n != 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        parts.push(format!("{sign}{}", time_text(micros.abs())));
    }
    Ok(parts.join(" "))
}

fn inet_text(raw: &[u8]) -> Result<String, BoxError> {
    let [family, bits, is_cidr, len] = fixed::<4>(raw)?;
    let addr = raw.get(4..4 + usize::from(len)).ok_or("inet too short")?;
    let (ip, full) = match family {
        2 => (Ipv4Addr::from(fixed::<4>(addr)?).to_string(), 32),
        _ => (Ipv6Addr::from(fixed::<16>(addr)?).to_string(), 128),
    };
    Ok(if bits == full && is_cidr == 0 {
        ip
    } else {
        format!("{ip}/{bits}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_interval_and_inet_text() {
        let b = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(uuid_text(b), "12345678-9abc-def0-0001-020304050607");
        let mut iv = Vec::new();
        iv.extend_from_slice(&((4 * 3600 + 5 * 60 + 6) * 1_000_000i64).to_be_bytes());
        iv.extend_from_slice(&3i32.to_be_bytes());
        iv.extend_from_slice(&14i32.to_be_bytes());
        assert_eq!(
            interval_text(&iv).expect("iv"),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(
            inet_text(&[2, 24, 0, 4, 10, 1, 2, 0]).expect("inet"),
            "10.1.2.0/24"
        );
        assert_eq!(
            inet_text(&[2, 32, 0, 4, 10, 1, 2, 3]).expect("inet"),
            "10.1.2.3"
        );
    }
}
