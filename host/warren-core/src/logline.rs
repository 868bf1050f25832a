//! What one log line of a process (Lua's `print` and `logger`, a
//! component's `log`) may hold, whatever the process hands over.
//!
//! Guarantees: a line is at most [`MAX_LOG_LINE`] bytes of the process's
//! text (cut at a character boundary, saying how long it was) and holds no
//! line break: `\n` and `\r` are written as `\n` and `\r`, so one call
//! cannot print lines that carry another process's `pid=` and `host=`
//! (red team M forged whole log lines with a newline).

use std::borrow::Cow;

/// Bytes of a process's text one log line keeps: five calls of 30 MB
/// wrote 150 MB to the log, each holding the worker 250 ms, and one 6 MB
/// `print` made the log's writer hold 6 MB while stderr was read slowly.
pub const MAX_LOG_LINE: usize = 8 * 1024;

/// `text` as a log line holds it (see the module doc).
pub fn log_line(text: &str) -> Cow<'_, str> {
    let cut = text.len() > MAX_LOG_LINE;
    let breaks = text.bytes().any(|b| b == b'\n' || b == b'\r');
    if !cut && !breaks {
        return Cow::Borrowed(text);
    }
    let mut at = text.len().min(MAX_LOG_LINE);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let kept = text.get(..at).unwrap_or_default();
    let mut line = String::with_capacity(kept.len() + 40);
    for c in kept.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    if cut {
        line.push_str(&format!("... ({} bytes, cut)", text.len()));
    }
    Cow::Owned(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_line_without_breaks_is_kept_as_it_is() {
        assert!(matches!(log_line("hello"), Cow::Borrowed("hello")));
    }

    #[test]
    fn breaks_are_written_out_and_long_lines_cut_at_a_character() {
        let forged = "ok\n INFO fake pid=<0.1> host=t:h\r";
        assert_eq!(log_line(forged), "ok\\n INFO fake pid=<0.1> host=t:h\\r");
        let long = "é".repeat(MAX_LOG_LINE);
        let line = log_line(&long);
        assert!(line.len() < MAX_LOG_LINE + 40, "{}", line.len());
        assert!(line.ends_with(&format!("... ({} bytes, cut)", long.len())));
        assert!(line.starts_with("éé"));
    }
}
