//! How deep the collections of a YAML text nest, found by one linear scan
//! before the text is parsed.
//!
//! libyaml (under serde_yaml_ng) re-examines every open flow collection
//! (`[`, `{`) at each token, so its time grows with the nesting times the
//! length, and the whole text is scanned before serde's recursion limit
//! (128) is consulted: 100,000 `[` in a 200 KB `_index.yaml` kept `warren
//! check` busy for minutes. The scan here follows libyaml's scanner — its
//! tokens, its block indentation and its simple keys — without building
//! tokens, so a `[` inside a quoted, plain or block scalar, a comment or a
//! tag is not counted, exactly as libyaml does not count it. Past the first
//! error libyaml would report, the scan goes on as best it can: what it
//! counts there can only refuse a text the parser refuses anyway. (Checked
//! against libyaml's own tokens on millions of generated texts: the flow
//! nesting agrees token for token; the block nesting reads one level low
//! while a flow collection is itself a key, `[a]: b`, whose mapping libyaml
//! opens before the `[` once it meets the `:`.)

/// Collections (block and flow together) a YAML text may nest. libyaml's
/// time per token grows with the open flow collections, so 100,000 nested
/// `[` in a 200 KB file took minutes to parse (and a 16 MiB file allows
/// millions); configuration nests a handful of levels, and serde stops at
/// 128 in any case.
pub const MAX_YAML_DEPTH: usize = 64;

/// Bytes after which libyaml gives up a simple key (`key: value`) that has
/// not met its `:`.
const SIMPLE_KEY_SPAN: usize = 1024;

/// The UTF-8 byte order mark, skipped at the start of a line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a text first nests deeper than [`MAX_YAML_DEPTH`] (1-based).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooDeep {
    /// The line of the collection that went past the bound.
    pub(crate) line: usize,
    /// Its column, in characters.
    pub(crate) column: usize,
}

/// Checks that `text` nests at most [`MAX_YAML_DEPTH`] collections deep.
pub(crate) fn check(text: &str) -> Result<(), TooDeep> {
    Scanner::new(text.as_bytes()).run()
}

/// libyaml's simple key at block level (the one that can open a block
/// mapping): where it starts.
#[derive(Clone, Copy)]
struct Key {
    pos: usize,
    line: usize,
    column: usize,
}

/// libyaml's scanner state, as far as it decides where tokens start.
struct Scanner<'a> {
    text: &'a [u8],
    /// Byte offset.
    pos: usize,
    /// 0-based line.
    line: usize,
    /// 0-based column, in characters.
    column: usize,
    /// Open flow collections.
    flow: usize,
    /// The column of the innermost block collection (-1: none).
    indent: isize,
    /// The enclosing block collections' columns.
    indents: Vec<isize>,
    /// The possible simple key at block level.
    key: Option<Key>,
    /// Whether a simple key may start here.
    key_allowed: bool,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a [u8]) -> Self {
        // libyaml's reader drops a leading byte order mark before columns count.
        let pos = if text.starts_with(BOM) { BOM.len() } else { 0 };
        Scanner {
            text,
            pos,
            line: 0,
            column: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            key: None,
            key_allowed: true,
        }
    }

    /// libyaml's `fetch_next_token`, token after token.
    fn run(&mut self) -> Result<(), TooDeep> {
        loop {
            self.skip_to_token();
            self.stale_key();
            self.unroll(to_isize(self.column));
            if self.at_end() {
                return Ok(());
            }
            let before = self.pos;
            self.token()?;
            if self.pos == before {
                // A character no token starts with: libyaml stops here.
                self.advance();
            }
        }
    }

    /// Scans the token starting here.
    fn token(&mut self) -> Result<(), TooDeep> {
        let c = self.at(0);
        if self.column == 0 && (c == b'%' || self.document_marker()) {
            self.unroll(-1);
            self.key = None;
            self.key_allowed = false;
            if c == b'%' {
                self.skip_to_break();
            } else {
                (0..3).for_each(|_| self.advance());
            }
            return Ok(());
        }
        match c {
            b'[' | b'{' => return self.open(),
            b']' | b'}' => self.close(),
            b',' => {
                self.remove_key();
                self.key_allowed = true;
                self.advance();
            }
            b'-' if self.blankz_at(1) => return self.indicator(true),
            b'?' if self.flow > 0 || self.blankz_at(1) => return self.indicator(self.flow == 0),
            b':' if self.flow > 0 || self.blankz_at(1) => return self.value(),
            b'*' | b'&' => {
                self.save_key();
                self.advance();
                while is_alpha(self.at(0)) {
                    self.advance();
                }
            }
            b'!' => {
                self.save_key();
                self.tag();
            }
            b'|' | b'>' if self.flow == 0 => {
                self.remove_key();
                self.key_allowed = true;
                self.block_scalar();
            }
            b'\'' | b'"' => {
                self.save_key();
                self.quoted(c == b'\'');
            }
            _ if self.plain_starts() => {
                self.save_key();
                self.plain();
            }
            _ => {}
        }
        Ok(())
    }

    /// `[` or `{`.
    fn open(&mut self) -> Result<(), TooDeep> {
        self.save_key();
        self.flow += 1;
        self.check_depth(self.line, self.column)?;
        self.key_allowed = true;
        self.advance();
        Ok(())
    }

    /// `]` or `}` (one too many closes nothing).
    fn close(&mut self) {
        if self.flow == 0 {
            self.key = None;
        } else {
            self.flow -= 1;
        }
        self.key_allowed = false;
        self.advance();
    }

    /// `- ` (a block entry) or `? ` (a key): each may open a block
    /// collection at its column.
    fn indicator(&mut self, allow_key: bool) -> Result<(), TooDeep> {
        self.roll(self.line, self.column)?;
        self.remove_key();
        self.key_allowed = allow_key;
        self.advance();
        Ok(())
    }

    /// `: `: a block mapping opens at the column of its simple key.
    fn value(&mut self) -> Result<(), TooDeep> {
        if self.flow == 0 {
            match self.key.take() {
                Some(key) => {
                    self.roll(key.line, key.column)?;
                    self.key_allowed = false;
                }
                None => {
                    self.roll(self.line, self.column)?;
                    self.key_allowed = true;
                }
            }
        } else {
            self.key_allowed = false;
        }
        self.advance();
        Ok(())
    }

    /// Whether a plain scalar starts here (libyaml's last case).
    fn plain_starts(&self) -> bool {
        let c = self.at(0);
        let indicator = b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !(self.blankz_at(0) || indicator)
            || (c == b'-' && !self.blank_at(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.blankz_at(1))
    }

    /// libyaml's `scan_plain_scalar`: in block context it runs on over
    /// lines indented deeper than the enclosing collection.
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        'scalar: loop {
            if (self.column == 0 && self.document_marker()) || self.at(0) == b'#' {
                break;
            }
            while !self.blankz_at(0) {
                let c = self.at(0);
                if self.flow > 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    break 'scalar; // libyaml: "found unexpected ':'"
                }
                let flow_end = self.flow > 0 && b",[]{}".contains(&c);
                if (c == b':' && self.blankz_at(1)) || flow_end {
                    break 'scalar;
                }
                self.advance();
            }
            if !(self.blank_at(0) || self.break_at(0)) {
                break;
            }
            while self.blank_at(0) || self.break_at(0) {
                if self.blank_at(0) {
                    self.advance();
                } else {
                    self.advance_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && to_isize(self.column) < indent {
                break;
            }
        }
        if leading_blanks {
            self.key_allowed = true;
        }
    }

    /// A single- (`''` escapes a quote) or double-quoted (`\` escapes)
    /// scalar, over any number of lines.
    fn quoted(&mut self, single: bool) {
        self.advance();
        while !self.at_end() {
            let c = self.at(0);
            if self.break_at(0) {
                self.advance_line();
            } else if single && c == b'\'' {
                self.advance();
                if self.at(0) != b'\'' {
                    return;
                }
                self.advance();
            } else if !single && c == b'"' {
                self.advance();
                return;
            } else if !single && c == b'\\' {
                self.advance();
                if self.break_at(0) {
                    self.advance_line();
                } else if !self.at_end() {
                    self.advance();
                }
            } else {
                self.advance();
            }
        }
    }

    /// libyaml's `scan_tag`: `!<uri>` (which may hold `[`, `]` and `,`),
    /// `!handle!suffix` or `!suffix`.
    fn tag(&mut self) {
        let verbatim = self.at(1) == b'<';
        self.advance();
        if verbatim {
            self.advance();
            self.skip_uri(true);
            if self.at(0) == b'>' {
                self.advance();
            }
            return;
        }
        while is_alpha(self.at(0)) {
            self.advance();
        }
        if self.at(0) == b'!' {
            self.advance();
        }
        self.skip_uri(false);
    }

    fn skip_uri(&mut self, verbatim: bool) {
        loop {
            let c = self.at(0);
            let flow_char = verbatim && b",[]".contains(&c);
            if !(is_alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c) || flow_char) {
                return;
            }
            self.advance();
        }
    }

    /// libyaml's `scan_block_scalar` (`|` or `>`): its header, then every
    /// line indented at least as deep as its content.
    fn block_scalar(&mut self) {
        self.advance();
        let mut increment = 0;
        let c = self.at(0);
        if c == b'+' || c == b'-' {
            self.advance();
            if self.at(0).is_ascii_digit() {
                increment = isize::from(self.at(0) - b'0');
                self.advance();
            }
        } else if c.is_ascii_digit() {
            increment = isize::from(c - b'0');
            self.advance();
            if self.at(0) == b'+' || self.at(0) == b'-' {
                self.advance();
            }
        }
        // Blanks and a comment end the header; anything else is libyaml's error.
        self.skip_to_break();
        if self.break_at(0) {
            self.advance_line();
        }
        let mut indent = match increment {
            0 => 0,
            n if self.indent >= 0 => self.indent + n,
            n => n,
        };
        self.block_breaks(&mut indent);
        while to_isize(self.column) == indent && !self.at_end() {
            self.skip_to_break();
            if self.break_at(0) {
                self.advance_line();
            }
            self.block_breaks(&mut indent);
        }
    }

    /// libyaml's `scan_block_scalar_breaks`: the indentation and empty
    /// lines before a block scalar's next line; an `indent` of 0 is
    /// settled here from the deepest of them.
    fn block_breaks(&mut self, indent: &mut isize) {
        let mut deepest = 0;
        loop {
            while (*indent == 0 || to_isize(self.column) < *indent) && self.at(0) == b' ' {
                self.advance();
            }
            deepest = deepest.max(to_isize(self.column));
            let short = *indent == 0 || to_isize(self.column) < *indent;
            if (short && self.at(0) == b'\t') || !self.break_at(0) {
                break;
            }
            self.advance_line();
        }
        if *indent == 0 {
            *indent = deepest.max(self.indent + 1).max(1);
        }
    }

    /// libyaml's `scan_to_next_token`: spaces, comments and line breaks.
    fn skip_to_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.pos..].starts_with(BOM) {
                self.advance();
            }
            while self.at(0) == b' '
                || ((self.flow > 0 || !self.key_allowed) && self.at(0) == b'\t')
            {
                self.advance();
            }
            if self.at(0) == b'#' {
                self.skip_to_break();
            }
            if !self.break_at(0) {
                return;
            }
            self.advance_line();
            if self.flow == 0 {
                self.key_allowed = true;
            }
        }
    }

    /// Every character up to the line break (or the end).
    fn skip_to_break(&mut self) {
        while !self.breakz_at(0) {
            self.advance();
        }
    }

    /// A simple key stays possible on its line and within
    /// [`SIMPLE_KEY_SPAN`] bytes.
    fn stale_key(&mut self) {
        if let Some(key) = self.key
            && (key.line < self.line || key.pos + SIMPLE_KEY_SPAN < self.pos)
        {
            self.key = None;
        }
    }

    fn save_key(&mut self) {
        if self.flow == 0 && self.key_allowed {
            self.key = Some(Key {
                pos: self.pos,
                line: self.line,
                column: self.column,
            });
        }
        self.key_allowed = false;
    }

    fn remove_key(&mut self) {
        if self.flow == 0 {
            self.key = None;
        }
    }

    /// Opens a block collection at `column` (of `line`) if it is deeper
    /// than the current one (block context only).
    fn roll(&mut self, line: usize, column: usize) -> Result<(), TooDeep> {
        if self.flow == 0 && self.indent < to_isize(column) {
            self.indents.push(self.indent);
            self.indent = to_isize(column);
            self.check_depth(line, column)?;
        }
        Ok(())
    }

    /// Closes the block collections deeper than `column` (block context
    /// only: a document marker inside a flow collection closes none).
    fn unroll(&mut self, column: isize) {
        while self.flow == 0 && self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    /// Refuses the collection opened at `line` and `column` (0-based) if
    /// it is one too many.
    fn check_depth(&self, line: usize, column: usize) -> Result<(), TooDeep> {
        if self.indents.len() + self.flow > MAX_YAML_DEPTH {
            return Err(TooDeep {
                line: line + 1,
                column: column + 1,
            });
        }
        Ok(())
    }

    /// `---` or `...` followed by a blank, a line break or the end.
    fn document_marker(&self) -> bool {
        let rest = &self.text[self.pos..];
        (rest.starts_with(b"---") || rest.starts_with(b"...")) && self.blankz_at(3)
    }

    /// The byte `k` bytes ahead (0 past the end).
    fn at(&self, k: usize) -> u8 {
        self.text.get(self.pos + k).copied().unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn blank_at(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// A line break: CR, LF, NEL (U+0085), LS (U+2028) or PS (U+2029).
    fn break_at(&self, k: usize) -> bool {
        let rest = self.text.get(self.pos + k..).unwrap_or_default();
        matches!(rest.first(), Some(b'\r' | b'\n'))
            || rest.starts_with(b"\xC2\x85")
            || rest.starts_with(b"\xE2\x80\xA8")
            || rest.starts_with(b"\xE2\x80\xA9")
    }

    fn breakz_at(&self, k: usize) -> bool {
        self.pos + k >= self.text.len() || self.break_at(k)
    }

    fn blankz_at(&self, k: usize) -> bool {
        self.blank_at(k) || self.breakz_at(k)
    }

    /// One character (one column).
    fn advance(&mut self) {
        let width = match self.at(0) {
            0..0x80 => 1,
            0x80..0xE0 => 2,
            0xE0..0xF0 => 3,
            _ => 4,
        };
        self.pos = (self.pos + width).min(self.text.len());
        self.column += 1;
    }

    /// One line break (CR LF counts as one).
    fn advance_line(&mut self) {
        if self.text[self.pos..].starts_with(b"\r\n") {
            self.pos += 2;
        } else {
            self.advance();
        }
        self.line += 1;
        self.column = 0;
    }
}

/// libyaml's anchor and tag-handle characters.
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// A column as libyaml compares it with indentation.
fn to_isize(column: usize) -> isize {
    isize::try_from(column).unwrap_or(isize::MAX)
}

#[cfg(test)]
mod tests {
    use super::{MAX_YAML_DEPTH, TooDeep, check};

    /// `n` flow sequences nested under the key `values`.
    fn flow(n: usize) -> String {
        format!("values: {}{}\n", "[".repeat(n), "]".repeat(n))
    }

    fn parses(text: &str) {
        let parsed: Result<serde_yaml_ng::Value, _> = serde_yaml_ng::from_str(text);
        assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
    }

    #[test]
    fn flow_nesting_up_to_the_bound_passes_and_one_more_is_refused() {
        // The key's block mapping is one level.
        assert_eq!(check(&flow(MAX_YAML_DEPTH - 1)), Ok(()));
        parses(&flow(MAX_YAML_DEPTH - 1));
        let err = check(&format!("a: 1\n{}", flow(MAX_YAML_DEPTH))).expect_err("too deep");
        assert_eq!(
            err,
            TooDeep {
                line: 2,
                column: 72
            }
        );
    }

    #[test]
    fn deep_block_nesting_is_refused_too() {
        let ok = format!("{}x\n", "- ".repeat(MAX_YAML_DEPTH));
        assert_eq!(check(&ok), Ok(()));
        let deep = format!("{}x\n", "- ".repeat(MAX_YAML_DEPTH + 1));
        assert_eq!(check(&deep).map_err(|e| e.line), Err(1));
        let mut map = String::new();
        for level in 0..=MAX_YAML_DEPTH {
            map.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert_eq!(check(&map).map_err(|e| e.line), Err(MAX_YAML_DEPTH + 1));
    }

    #[test]
    fn brackets_in_scalars_comments_and_tags_do_not_count() {
        let many = "[".repeat(MAX_YAML_DEPTH * 2);
        let texts = [
            format!("a: '{many}'\n"),
            format!("a: \"{many}\\\"{many}\"\n"),
            format!("a: x{many}\n"),
            format!("a: x {many}\n"),
            format!("a: 1 # {many}\n# {many}\n"),
            format!("a: |\n  {many}\n  {many}\nb: 1\n"),
            format!("a: >-\n\n    {many}\n   \n    {many}\n"),
            format!("a: plain\n  {many}\n"),
            format!("- a\n  {many}\n"),
            format!("a: !<tag:{many}> x\n"),
            format!("a: 'it''s {many}\n  over lines'\n"),
            format!("a: [\"{many}\", '{many}', x:y, {{b: c}}]\n"),
            format!("a: \"x\\\n  {many}\"\n"),
        ];
        for text in &texts {
            assert_eq!(check(text), Ok(()), "{text:?}");
            parses(text);
        }
    }

    #[test]
    fn brackets_where_a_token_starts_count() {
        let opens = "[".repeat(MAX_YAML_DEPTH + 1);
        let texts = [
            // The plain scalar ends with its line: the next one is less indented.
            format!("a: plain\nb: {opens}"),
            // A quote inside a plain scalar is no quote.
            format!("a: it's\nb: {opens}"),
            // A block scalar ends at the first line indented less.
            format!("a: |\n  text '\nb: {opens}"),
            // A comment needs a blank before it inside a plain scalar.
            format!("a: x#y\nb: {opens}"),
            // A tag's URI holds no bracket unless verbatim.
            format!("a: !t {opens}"),
            // In a flow collection, a flow indicator ends a plain scalar.
            format!("a: [x{opens}"),
            // Anchors, and a second document.
            format!("a: &x {opens}"),
            format!("a: 1\n---\nb: {opens}"),
            // A closing bracket in a string closes nothing.
            format!("a: [']]]]', {opens}"),
        ];
        for text in &texts {
            assert!(check(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_at_the_first_level_past_the_bound() {
        let text = format!("a: 1\nvalues: {}", "[".repeat(100_000));
        let err = check(&text).expect_err("too deep");
        assert_eq!(err.line, 2);
        assert_eq!(err.column, "values: ".len() + MAX_YAML_DEPTH);
    }

    #[test]
    fn crlf_nel_and_a_byte_order_mark_are_line_breaks_and_nothing() {
        let opens = "[".repeat(MAX_YAML_DEPTH + 1);
        let text = format!("\u{FEFF}a: plain\r\nb: {opens}");
        assert_eq!(check(&text).map_err(|e| e.line), Err(2));
        let text = format!("a: plain\u{85}b: {opens}");
        assert_eq!(check(&text).map_err(|e| e.line), Err(2));
        let text = "\u{FEFF}a:\r\n  - 'x\r\n    y'\r\n  - [1, {b: 2}]\r\n";
        assert_eq!(check(text), Ok(()));
        parses(text);
    }
}
