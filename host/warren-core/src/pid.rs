//! Process identifiers.
//!
//! A [`Pid`] is unique for the life of a runtime (serials are never reused)
//! and renders as `<host.serial>`, the string form Lua code sees. Parsing is
//! strict so that a registered name can never be mistaken for a pid.

use std::fmt;

const SERIAL_BITS: u32 = 48;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;

/// A process identifier: the host (tenant) index and a runtime-wide serial.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Debug)]
pub struct Pid(u64);

impl Pid {
    /// The runtime itself, as the sender of events it originates (a
    /// supervisor's CANCEL); never the pid of a process.
    pub const RUNTIME: Pid = Pid(0);

    /// Builds a pid from its host index and serial (the serial is truncated to 48 bits).
    pub fn new(host: u16, serial: u64) -> Self {
        Pid((u64::from(host) << SERIAL_BITS) | (serial & SERIAL_MASK))
    }

    /// The index of the host (scheduler domain) the process runs on.
    pub fn host(self) -> u16 {
        // The shift leaves at most 16 significant bits.
        u16::try_from(self.0 >> SERIAL_BITS).unwrap_or(u16::MAX)
    }

    /// The runtime-wide serial number.
    pub fn serial(self) -> u64 {
        self.0 & SERIAL_MASK
    }

    /// The raw 64-bit form, for compact keys in front-ends.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds a pid from [`Pid::as_u64`].
    pub fn from_u64(raw: u64) -> Self {
        Pid(raw)
    }

    /// Parses the `<host.serial>` form; anything else is `None`.
    pub fn parse(text: &str) -> Option<Pid> {
        let inner = text.strip_prefix('<')?.strip_suffix('>')?;
        let (host, serial) = inner.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(host) || !all_digits(serial) {
            return None;
        }
        let serial: u64 = serial.parse().ok()?;
        if serial > SERIAL_MASK {
            return None;
        }
        Some(Pid::new(host.parse().ok()?, serial))
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}>", self.host(), self.serial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let pid = Pid::new(3, 123_456);
        assert_eq!(pid.to_string(), "<3.123456>");
        assert_eq!(Pid::parse("<3.123456>"), Some(pid));
        assert_eq!(pid.host(), 3);
        assert_eq!(pid.serial(), 123_456);
    }

    #[test]
    fn rejects_names_and_malformed_text() {
        for bad in [
            "cache", "<3>", "<3.>", "<.1>", "<a.1>", "3.1", "<3.1", "<-1.2>", "<1.2.3>",
        ] {
            assert_eq!(Pid::parse(bad), None, "{bad}");
        }
        assert_eq!(Pid::parse("<99999999.1>"), None);
    }
}
