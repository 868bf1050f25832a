//! Sizes in configuration: `16MiB`, `512KiB`, `1GB`, or a plain byte count.

/// The largest size accepted (1 TiB); larger values are almost certainly typos.
pub const MAX_SIZE: u64 = 1 << 40;

const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Parses a size into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. \"16MiB\" or a byte count"))?;
    let unit = unit.trim();
    let scale = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("invalid size {text:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB, GB)"))?
    };
    number
        .checked_mul(scale)
        .filter(|bytes| *bytes <= MAX_SIZE)
        .ok_or_else(|| format!("size {text:?} is larger than the 1TiB maximum"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("16 megs").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("9999TiB").is_err());
    }
}
