//! Erasure and rewriting (§3.3 rules 1–4): blank the recorded spans with
//! spaces, keeping `\n` and `\r`, put `;` on the first byte of each erased
//! statement and of each postfix cast followed by `(`, then insert
//! `__warren_types.` before each run-time type reference. Every other byte
//! is unchanged, so the output has the input's lines; without rewrites it
//! also has the input's length.

use crate::Erasure;

/// What is inserted before a run-time type reference.
pub(crate) const TYPES_PREFIX: &str = "__warren_types.";

/// The translated text, and whether any rewrite was inserted. `inserts`
/// are ascending byte offsets; one inside an erased span is skipped.
pub(crate) fn erase(src: &str, mut e: Erasure, inserts: &[usize]) -> (String, bool) {
    let mut out = src.as_bytes().to_vec();
    e.spans.sort_unstable();
    // Merge overlapping spans (nested erasures) into disjoint ones.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(e.spans.len());
    for (s, t) in e.spans {
        match merged.last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(t),
            _ => merged.push((s, t)),
        }
    }
    for &(s, t) in &merged {
        let end = t.min(out.len());
        for b in out.iter_mut().take(end).skip(s) {
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
    }
    // A `;` only where its span is outermost (starts a merged span): one
    // inside another erased span (say in `typeof(…)`) would land mid-type.
    for p in e.semis {
        let i = merged.partition_point(|&(s, _)| s <= p);
        let outermost = i > 0 && merged.get(i - 1).is_some_and(|&(s, _)| s == p);
        if let Some(b) = out.get_mut(p).filter(|_| outermost) {
            *b = b';';
        }
    }
    let live: Vec<usize> = inserts
        .iter()
        .copied()
        .filter(|&p| {
            let i = merged.partition_point(|&(s, _)| s <= p);
            !(i > 0 && merged.get(i - 1).is_some_and(|&(_, t)| p < t))
        })
        .collect();
    if !live.is_empty() {
        let mut with = Vec::with_capacity(out.len() + live.len() * TYPES_PREFIX.len());
        let mut last = 0;
        for p in &live {
            let p = (*p).min(out.len());
            with.extend_from_slice(out.get(last..p).unwrap_or(&[]));
            with.extend_from_slice(TYPES_PREFIX.as_bytes());
            last = p;
        }
        with.extend_from_slice(out.get(last..).unwrap_or(&[]));
        out = with;
    }
    let text = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, !live.is_empty())
}
