//! `@pattern` regexes: compiled once per text to a lazy DFA over bytes and
//! run byte by byte, so that the caller is asked between pieces of a long
//! match whether to go on.
//!
//! A regex crate `is_match` is one call that nothing can stop: a pattern
//! whose DFA has no room for its states (`[01]*1[01]{300}[^01]`: one state
//! per window of 300 bits) falls back to a slower engine, and one check of
//! a 12.5 MiB string held a worker 21 s, seven times its process's CPU
//! budget. Here the lazy DFA rebuilds its states as it goes (never giving
//! up), and [`Pattern::find_in`] asks its caller every [`POLL_BYTES`].
//!
//! Syntax is Go RE2's as the `regex` crate reads it (`unicode-perl`
//! classes, no Unicode case folding), over bytes: a string that is not
//! UTF-8 is matched as it is. `\b` and `\B` are ASCII word boundaries, as
//! in Go: the crate's Unicode boundary is beyond a DFA on non-ASCII text.
//!
//! Guarantees: at most [`POLL_BYTES`] bytes are scanned between two asks
//! (each byte at most one DFA state built, bounded by the NFA's size); a
//! pattern keeps at most one cache of [`CACHE_KEPT`] bytes between
//! searches.

use std::sync::Mutex;

use regex_automata::Input;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;

/// Bytes scanned between two asks of the caller.
pub const POLL_BYTES: usize = 1 << 10;

/// Most bytes of DFA states a search may hold (the lazy DFA's cache); past
/// it the cache is cleared and states are built again.
const CACHE_CAPACITY: usize = 2 << 20;

/// Largest cache a pattern keeps for its next search; a larger one is
/// dropped (a process holding thousands of patterns would otherwise hold
/// their caches, which no measure counts).
const CACHE_KEPT: usize = 256 << 10;

/// Why a regex did not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternError {
    /// Its automaton is past the size limit.
    TooBig,
    /// It is not valid syntax (or uses what a DFA cannot run).
    Syntax,
}

/// Why a search ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The caller said stop.
    Stopped,
    /// The automaton could not go on (it quit on a byte).
    GaveUp,
}

/// A compiled `@pattern`.
pub struct Pattern {
    dfa: DFA,
    spare: Mutex<Option<Cache>>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pattern")
    }
}

impl Pattern {
    /// Compiles `s`, its NFA at most `size_limit` bytes.
    pub fn new(s: &str, size_limit: usize) -> Result<Pattern, PatternError> {
        let dfa = DFA::builder()
            .syntax(syntax::Config::new().utf8(false))
            .thompson(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(size_limit)),
            )
            .configure(
                DFA::config()
                    .cache_capacity(CACHE_CAPACITY)
                    .skip_cache_capacity_check(true),
            )
            .build(&ascii_word_boundaries(s))
            .map_err(|e| {
                let too_big = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<thompson::BuildError>())
                    .is_some_and(|e| e.size_limit().is_some());
                if too_big {
                    PatternError::TooBig
                } else {
                    PatternError::Syntax
                }
            })?;
        Ok(Pattern {
            dfa,
            spare: Mutex::new(None),
        })
    }

    /// Whether it matches anywhere in `haystack`, asking `go_on` before
    /// each [`POLL_BYTES`] after the first.
    pub fn find_in(
        &self,
        haystack: &[u8],
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<bool, Unanswered> {
        let mut cache = self
            .spare
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_else(|| self.dfa.create_cache());
        let out = self.search(&mut cache, haystack, go_on);
        if cache.memory_usage() <= CACHE_KEPT
            && let Ok(mut spare) = self.spare.lock()
        {
            *spare = Some(cache);
        }
        out
    }

    /// Whether it matches anywhere in `haystack`, however long that takes.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.find_in(haystack, &mut || true).unwrap_or(false)
    }

    fn search(
        &self,
        cache: &mut Cache,
        haystack: &[u8],
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<bool, Unanswered> {
        let gave_up = |_| Unanswered::GaveUp;
        let mut sid = self
            .dfa
            .start_state_forward(cache, &Input::new(haystack))
            .map_err(|_| Unanswered::GaveUp)?;
        for (i, piece) in haystack.chunks(POLL_BYTES).enumerate() {
            if i > 0 && !go_on() {
                return Err(Unanswered::Stopped);
            }
            for &b in piece {
                sid = self.dfa.next_state(cache, sid, b).map_err(gave_up)?;
                if sid.is_tagged() {
                    if sid.is_match() {
                        return Ok(true);
                    }
                    if sid.is_dead() {
                        return Ok(false);
                    }
                    if sid.is_quit() {
                        return Err(Unanswered::GaveUp);
                    }
                }
            }
        }
        sid = self.dfa.next_eoi_state(cache, sid).map_err(gave_up)?;
        Ok(sid.is_match())
    }
}

/// `s` with each `\b` and `\B` escape written `(?-u:\b)`, `(?-u:\B)`.
fn ascii_word_boundaries(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(b @ ('b' | 'B')) => {
                out.push_str("(?-u:\\");
                out.push(b);
                out.push(')');
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
