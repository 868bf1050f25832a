//! The kernel's Lua source: what stays in Lua of the machinery that
//! schedules a worker's Lua processes (its hot paths are C closures in
//! [`crate::machine`]), kept in files by concern under `kernel/` and
//! loaded as one chunk, `=warren-kernel`.
//!
//! Guarantees: [`SOURCE`] is the parts in [`PARTS`]' order, each ending in
//! a line break, so a part's line numbers shift only with the parts
//! before it (the preemption hook classifies kernel frames by the lines
//! of this text, `preempt.rs`). The parts share the chunk's locals (and
//! Lua's limit of 200 of them): a part uses what an earlier part
//! declares, never a later one's.

/// Defines [`PARTS`] and [`SOURCE`] from the same list of file names.
macro_rules! parts {
    ($($name:literal),* $(,)?) => {
        /// Each part's name and text, in load order.
        #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
        pub(crate) const PARTS: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("kernel/", $name, ".lua")))),*];
        /// The kernel's one chunk: every part, in order.
        pub(crate) const SOURCE: &str =
            concat!($(include_str!(concat!("kernel/", $name, ".lua"))),*);
    };
}

parts!(
    "preamble",
    "channels",
    "errors",
    "processes",
    "measure",
    "items",
    "spawn",
    "messages",
    "coroutines",
    "time",
    "modules",
    "hostcalls",
    "sandbox",
);

#[cfg(test)]
mod tests {
    use super::{PARTS, SOURCE};

    #[test]
    fn the_chunk_is_every_part_in_order_each_ending_its_last_line() {
        for (name, text) in PARTS {
            assert!(text.ends_with('\n'), "kernel/{name}.lua ends mid-line");
            assert!(!text.trim().is_empty(), "kernel/{name}.lua is empty");
        }
        let joined: String = PARTS.iter().map(|(_, text)| *text).collect();
        assert_eq!(joined, SOURCE);
    }
}
