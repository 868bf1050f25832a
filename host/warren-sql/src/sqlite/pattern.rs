//! SQLite's `LIKE`, `GLOB` and `instr()` as SQLite computes them, but
//! interruptible.
//!
//! The built-ins run inside one step of SQLite's virtual machine, and the
//! progress handler that enforces `query_timeout`, a caller's CPU budget
//! and a stop only runs between steps: `'aaa…' LIKE '%aaa…ab'` over a
//! 4 MB string held an entry's connection for 50 s after its process was
//! terminated, and `instr()` of two 8 MB values compares for about an
//! hour. These ports of SQLite's `patternCompare` (func.c, 3.4x) and
//! `instrFunc` give the same answers; the matcher counts its steps and
//! asks `stop` every [`STEPS_PER_CHECK`] of them, and `instr` is linear
//! (`memchr::memmem`). The strings are the engine's texts: bytes up to the
//! first NUL, decoded as SQLite's `sqlite3Utf8Read` decodes them,
//! invalid UTF-8 included.
//!
//! Guarantees: the same results as SQLite's functions (property tests in
//! `tests/sqlite_patterns.rs` compare them on random inputs); a match
//! stops with [`Stopped`] within [`STEPS_PER_CHECK`] steps of `stop`
//! answering true; recursion is one level per wildcard run in the
//! pattern, whose length the connection bounds
//! ([`super::guard::MAX_PATTERN_BYTES`]).

/// Characters compared between two calls of the stop check: a few
/// microseconds of matching.
pub(crate) const STEPS_PER_CHECK: u32 = 1 << 12;

/// The match was stopped (the statement's bound was reached).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stopped;

/// What one pattern language calls its wildcards (`compareInfo`).
#[derive(Clone, Copy)]
pub(crate) struct Syntax {
    /// Any run of characters (`%`, `*`); 0 when it is the escape.
    pub(crate) all: u32,
    /// One character (`_`, `?`); 0 when it is the escape.
    pub(crate) one: u32,
    /// `GLOB`'s `[` sets (0 for `LIKE`).
    pub(crate) set: u32,
    /// ASCII letters compare without case (`LIKE`).
    pub(crate) no_case: bool,
}

/// `GLOB`: `*`, `?`, `[...]`, case-sensitive.
pub(crate) const GLOB: Syntax = Syntax {
    all: b'*' as u32,
    one: b'?' as u32,
    set: b'[' as u32,
    no_case: false,
};

/// `LIKE`: `%`, `_`, ASCII letters without case.
pub(crate) const LIKE: Syntax = Syntax {
    all: b'%' as u32,
    one: b'_' as u32,
    set: 0,
    no_case: true,
};

/// `sqlite3Utf8Read` over `s` from `*at` (0 at the end or a NUL).
fn read(s: &[u8], at: &mut usize) -> u32 {
    let Some(&b) = s.get(*at) else { return 0 };
    *at += 1;
    let mut c = u32::from(b);
    if c >= 0xc0 {
        c = u32::from(TRANS1[(c - 0xc0) as usize]);
        while let Some(&n) = s.get(*at).filter(|&&n| n & 0xc0 == 0x80) {
            c = (c << 6) + u32::from(n & 0x3f);
            *at += 1;
        }
        if c < 0x80 || (c & 0xffff_f800) == 0xd800 || (c & 0xffff_fffe) == 0xfffe {
            c = 0xfffd;
        }
    }
    c
}

/// The first character of `s`, as SQLite reads it (0 for none).
pub(crate) fn first_char(s: &[u8]) -> u32 {
    read(s, &mut 0)
}

/// SQLite's `sqlite3Utf8Trans1`: the value bits of a lead byte 0xc0..0xff.
const TRANS1: [u8; 64] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00, 0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x00,
];

/// The outcome of one comparison (SQLite's `SQLITE_MATCH`,
/// `SQLITE_NOMATCH`, `SQLITE_NOWILDCARDMATCH`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Match,
    NoMatch,
    NoWildcardMatch,
}

/// A comparison in progress: the syntax, the escape (`matchOther`) and
/// the step budget before the next stop check.
struct Matcher<'s, S: FnMut() -> bool> {
    syntax: Syntax,
    other: u32,
    steps: u32,
    stop: &'s mut S,
}

fn lower(c: u32) -> u32 {
    if c < 0x80 {
        u32::from((c as u8).to_ascii_lowercase())
    } else {
        c
    }
}

/// The text SQLite compares: the bytes before the first NUL.
fn text(s: &[u8]) -> &[u8] {
    memchr::memchr(0, s).map_or(s, |end| &s[..end])
}

/// Whether `string` matches `pattern` (SQLite's `patternCompare` with
/// `syntax` and escape `escape`), or [`Stopped`].
pub(crate) fn matches(
    pattern: &[u8],
    string: &[u8],
    syntax: Syntax,
    escape: u32,
    stop: &mut impl FnMut() -> bool,
) -> Result<bool, Stopped> {
    let mut m = Matcher {
        syntax,
        other: escape,
        steps: 0,
        stop,
    };
    Ok(m.compare(text(pattern), 0, text(string), 0)? == Outcome::Match)
}

impl<S: FnMut() -> bool> Matcher<'_, S> {
    /// Counts one step; asks `stop` every [`STEPS_PER_CHECK`].
    fn tick(&mut self) -> Result<(), Stopped> {
        self.steps += 1;
        if self.steps >= STEPS_PER_CHECK {
            self.steps = 0;
            if (self.stop)() {
                return Err(Stopped);
            }
        }
        Ok(())
    }

    fn compare(
        &mut self,
        p: &[u8],
        mut pi: usize,
        s: &[u8],
        mut si: usize,
    ) -> Result<Outcome, Stopped> {
        let Syntax {
            all,
            one,
            set,
            no_case,
        } = self.syntax;
        let mut escaped: Option<usize> = None;
        loop {
            let mut c = read(p, &mut pi);
            if c == 0 {
                break;
            }
            self.tick()?;
            if c == all && all != 0 {
                return self.after_all(p, pi, s, si);
            }
            if c == self.other && c != 0 {
                if set == 0 {
                    c = read(p, &mut pi);
                    if c == 0 {
                        return Ok(Outcome::NoMatch);
                    }
                    escaped = Some(pi);
                } else {
                    match self.in_set(p, &mut pi, s, &mut si) {
                        true => continue,
                        false => return Ok(Outcome::NoMatch),
                    }
                }
            }
            let c2 = read(s, &mut si);
            if c == c2 {
                continue;
            }
            if no_case && lower(c) == lower(c2) && c < 0x80 && c2 < 0x80 {
                continue;
            }
            if c == one && one != 0 && escaped != Some(pi) && c2 != 0 {
                continue;
            }
            return Ok(Outcome::NoMatch);
        }
        Ok(if si >= s.len() {
            Outcome::Match
        } else {
            Outcome::NoMatch
        })
    }

    /// After a run-of-anything wildcard at `pi - 1`.
    fn after_all(
        &mut self,
        p: &[u8],
        mut pi: usize,
        s: &[u8],
        mut si: usize,
    ) -> Result<Outcome, Stopped> {
        let Syntax {
            all,
            one,
            set,
            no_case,
        } = self.syntax;
        let mut c;
        loop {
            c = read(p, &mut pi);
            if !(c == all || (c == one && one != 0)) {
                break;
            }
            if c == one && read(s, &mut si) == 0 {
                return Ok(Outcome::NoWildcardMatch);
            }
        }
        if c == 0 {
            return Ok(Outcome::Match);
        }
        if c == self.other {
            if set == 0 {
                c = read(p, &mut pi);
                if c == 0 {
                    return Ok(Outcome::NoWildcardMatch);
                }
            } else {
                // A set right after the wildcard: tried at every position.
                let from = pi - 1;
                while si < s.len() {
                    self.tick()?;
                    let got = self.compare(p, from, s, si)?;
                    if got != Outcome::NoMatch {
                        return Ok(got);
                    }
                    read(s, &mut si);
                }
                return Ok(Outcome::NoWildcardMatch);
            }
        }
        if c < 0x80 {
            let (a, b) = if no_case {
                (u32::from((c as u8).to_ascii_uppercase()), lower(c))
            } else {
                (c, c)
            };
            loop {
                // strcspn: the next byte that is either stop character.
                let next = s[si..]
                    .iter()
                    .position(|&x| u32::from(x) == a || u32::from(x) == b);
                let Some(off) = next else { break };
                si += off + 1;
                self.tick()?;
                let got = self.compare(p, pi, s, si)?;
                if got != Outcome::NoMatch {
                    return Ok(got);
                }
            }
        } else {
            loop {
                let c2 = read(s, &mut si);
                if c2 == 0 {
                    break;
                }
                self.tick()?;
                if c2 != c {
                    continue;
                }
                let got = self.compare(p, pi, s, si)?;
                if got != Outcome::NoMatch {
                    return Ok(got);
                }
            }
        }
        Ok(Outcome::NoWildcardMatch)
    }

    /// A `[...]` set at `pi` (after its `[`) against the next character
    /// of the string: whether it matched (both positions moved past).
    fn in_set(&mut self, p: &[u8], pi: &mut usize, s: &[u8], si: &mut usize) -> bool {
        let c = read(s, si);
        if c == 0 {
            return false;
        }
        let (mut prior, mut seen, mut invert) = (0u32, false, false);
        let mut c2 = read(p, pi);
        if c2 == u32::from(b'^') {
            invert = true;
            c2 = read(p, pi);
        }
        if c2 == u32::from(b']') {
            seen = c == u32::from(b']');
            c2 = read(p, pi);
        }
        while c2 != 0 && c2 != u32::from(b']') {
            let next = p.get(*pi).copied().unwrap_or(0);
            if c2 == u32::from(b'-') && next != b']' && next != 0 && prior > 0 {
                c2 = read(p, pi);
                if c >= prior && c <= c2 {
                    seen = true;
                }
                prior = 0;
            } else {
                if c == c2 {
                    seen = true;
                }
                prior = c2;
            }
            c2 = read(p, pi);
        }
        c2 != 0 && (seen ^ invert)
    }
}

/// SQLite's `instr(haystack, needle)` over the two values' bytes: the
/// 1-based position of the first occurrence, in characters when `text`
/// (only at a character's first byte, as SQLite steps) and in bytes
/// otherwise; 0 when absent, 1 for an empty needle. Linear.
pub(crate) fn instr(haystack: &[u8], needle: &[u8], text: bool) -> i64 {
    if needle.is_empty() {
        return 1;
    }
    let finder = memchr::memmem::Finder::new(needle);
    let mut from = 0;
    while let Some(off) = finder.find(&haystack[from..]) {
        let at = from + off;
        if !text || haystack[at] & 0xc0 != 0x80 || at == 0 {
            // SQLite steps from the first byte to each next byte that
            // starts a character, counting one per step.
            let steps = if text && at > 0 {
                haystack[1..=at]
                    .iter()
                    .filter(|&&b| b & 0xc0 != 0x80)
                    .count()
            } else {
                at
            };
            return i64::try_from(steps).unwrap_or(i64::MAX).saturating_add(1);
        }
        from = at + 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes(), LIKE, 0, &mut || false).expect("not stopped")
    }

    fn glob(p: &str, s: &str) -> bool {
        matches(
            p.as_bytes(),
            s.as_bytes(),
            GLOB,
            u32::from(b'['),
            &mut || false,
        )
        .expect("not stopped")
    }

    #[test]
    fn like_and_glob_match_as_sqlite_documents() {
        assert!(like("a%c", "ABBC") && like("_b_", "abc") && !like("a_", "a"));
        assert!(glob("a*[b-d]", "axxc") && !glob("a*[^b-d]", "axxc") && glob("[]x]", "]"));
        assert!(!glob("A*", "abc") && glob("?é?", "aéb"));
    }

    #[test]
    fn a_long_match_asks_to_stop_and_stops() {
        let s = "a".repeat(200_000);
        let p = format!("%{}b", "a".repeat(2_000));
        let mut asked = 0;
        let got = matches(p.as_bytes(), s.as_bytes(), LIKE, 0, &mut || {
            asked += 1;
            asked > 3
        });
        assert_eq!(got, Err(Stopped));
        assert_eq!(asked, 4);
    }

    #[test]
    fn instr_counts_characters_in_text_and_bytes_in_blobs() {
        assert_eq!(instr("héllo".as_bytes(), b"llo", true), 3);
        assert_eq!(instr("héllo".as_bytes(), b"llo", false), 4);
        assert_eq!(instr(b"abc", b"", true), 1);
        assert_eq!(instr(b"abc", b"d", true), 0);
        // A needle starting inside a character is not found there in text.
        assert_eq!(instr("é".as_bytes(), &"é".as_bytes()[1..], true), 0);
        assert_eq!(instr("é".as_bytes(), &"é".as_bytes()[1..], false), 2);
    }
}
