//! Process identifiers.
//!
//! A [`Pid`] is unique for the life of a runtime (serials are never reused)
//! and renders as `<host.serial>`, the string form Lua code sees. Serials
//! are counted per host, so a tenant's pids say nothing about how fast
//! other tenants spawn. Parsing is
//! strict so that a registered name can never be mistaken for a pid.

use std::fmt;

const SERIAL_BITS: u32 = 48;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;

/// A process identifier: the host (tenant) index and that host's serial.
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

    /// The serial number within its host.
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

    /// Parses the `<host.serial>` form; anything else is `None`. Byte by
    /// byte (a component's every send names its target by this text; the
    /// `str` splitting and `parse` took about 230 instructions).
    pub fn parse(text: &str) -> Option<Pid> {
        if text.len() > MAX_SPELLING_BYTES {
            return None;
        }
        let inner = text.as_bytes().strip_prefix(b"<")?.strip_suffix(b">")?;
        let dot = inner.iter().position(|&b| b == b'.')?;
        let host = u16::try_from(number(inner.get(..dot)?)?).ok()?;
        let serial = number(inner.get(dot + 1..)?)?;
        (serial <= SERIAL_MASK).then(|| Pid::new(host, serial))
    }
}

/// The number a non-empty run of ASCII digits spells, if it fits `u64`.
fn number(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The longest text of a pid: `<`, 5 digits of host, `.`, 15 of serial
/// (48 bits), `>`. A front-end that keeps its processes by their text
/// looks up no longer string: a long string's hash reads every byte.
pub const TEXT_MAX: usize = 23;

/// The longest text [`Pid::parse`] reads: leading zeros spell the same
/// pid (`<01.7>`), up to this many bytes in all; a longer text is no pid
/// (nor a name: `registry::MAX_NAME_BYTES`), refused before it is
/// scanned (a 12 MiB `<000…` took milliseconds to read).
pub const MAX_SPELLING_BYTES: usize = 256;

/// A pid's `<host.serial>` text, made without allocating or the formatting
/// machinery (front-ends hand it to their languages on every spawn and
/// message).
#[derive(Copy, Clone)]
pub struct PidText {
    buf: [u8; TEXT_MAX],
    len: u8,
}

impl PidText {
    /// The text's bytes (ASCII), for a front-end that copies them into its
    /// own string without checking them again (`as_str` validates: 78
    /// instructions a call, on every spawn and every message's sender).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len).min(TEXT_MAX)]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and `<.>` are ever written (see `Pid::text`).
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("<?>")
    }
}

/// Writes the decimal digits of `n` into `buf` from `at` on; returns the
/// next free position. The digits are counted first and written in
/// place, two at a time from the end (a spawn makes three pid texts; the
/// loop of single digits and the copy after it were 85 instructions each).
fn digits(buf: &mut [u8; TEXT_MAX], at: usize, mut n: u64) -> usize {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let count = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let end = (at + count).min(TEXT_MAX);
    let mut i = end;
    while n >= 10 && i >= at + 2 {
        let pair = usize::try_from(n % 100).unwrap_or(0) * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if i > at {
        buf[i - 1] = b'0' + u8::try_from(n % 10).unwrap_or(0);
    }
    end
}

impl Pid {
    /// The `<host.serial>` text, on the stack.
    pub fn text(self) -> PidText {
        let mut buf = [0u8; TEXT_MAX];
        buf[0] = b'<';
        let mut at = digits(&mut buf, 1, u64::from(self.host()));
        buf[at] = b'.';
        at = digits(&mut buf, at + 1, self.serial());
        buf[at] = b'>';
        PidText {
            buf,
            len: u8::try_from(at + 1).unwrap_or(0),
        }
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::any;

    use super::*;

    #[test]
    fn text_is_the_display_form_at_the_extremes() {
        for pid in [
            Pid::new(0, 0),
            Pid::new(u16::MAX, SERIAL_MASK),
            Pid::new(7, 10),
            Pid::new(10_000, 999_999_999_999),
        ] {
            let text = pid.text();
            assert_eq!(text.as_str(), format!("<{}.{}>", pid.host(), pid.serial()));
            assert_eq!(text.as_bytes(), text.as_str().as_bytes());
            assert_eq!(Pid::parse(text.as_str()), Some(pid));
        }
    }

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

    #[test]
    fn leading_zeros_spell_the_pid_up_to_the_longest_spelling() {
        let pid = Pid::new(1, 7);
        let spelled = |n: usize| format!("<1.{}7>", "0".repeat(n));
        let longest = spelled(MAX_SPELLING_BYTES - "<1.7>".len());
        assert_eq!(longest.len(), MAX_SPELLING_BYTES);
        assert_eq!(Pid::parse(&longest), Some(pid));
        let longer = spelled(MAX_SPELLING_BYTES + 1 - "<1.7>".len());
        assert_eq!(Pid::parse(&longer), None, "{} bytes read", longer.len());
        assert!(Pid::new(u16::MAX, SERIAL_MASK).text().as_bytes().len() <= TEXT_MAX);
    }

    /// The parser before it went byte by byte: `str` splitting and `parse`.
    fn parse_by_str(text: &str) -> Option<Pid> {
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

    proptest::proptest! {
        #[test]
        fn parses_as_str_parsing_did(text in "[<>.0-9+a-]{0,30}", host in any::<u16>(), serial in any::<u64>()) {
            proptest::prop_assert_eq!(Pid::parse(&text), parse_by_str(&text));
            let near = format!("<{host}.{serial}>");
            proptest::prop_assert_eq!(Pid::parse(&near), parse_by_str(&near));
            let wide = format!("<{}.{serial}>", u32::from(host) * 7);
            proptest::prop_assert_eq!(Pid::parse(&wide), parse_by_str(&wide));
        }

        #[test]
        fn text_is_what_format_writes(host in any::<u16>(), serial in 0..=SERIAL_MASK, small in 0u64..1000) {
            for serial in [serial, small, serial / 10, serial % 100_000] {
                let expected = format!("<{host}.{serial}>");
                let text = Pid::new(host, serial).text();
                proptest::prop_assert_eq!(text.as_str(), expected.as_str());
            }
        }
    }
}
