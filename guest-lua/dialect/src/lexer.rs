//! The lexer: Lua 5.4's tokens plus Wippy's (`->`, `?`, `!`, `@`, the nine
//! reserved words), each with its byte span, line and column.
//!
//! Tokens are produced on demand into a small look-ahead buffer, so memory
//! does not grow with the input. A lexical error becomes an [`Tok::Error`]
//! token: the parser fails on it like on any unexpected token, and then
//! reports the lexer's message, so the first error in reading order wins.
//!
//! Two Wippy rules live here:
//! - `::` is a label opener only when followed on the same line by spaces
//!   or tabs, a Name, spaces or tabs and `::` ([`Token::label`]); otherwise
//!   it is the cast operator.
//! - `--` starts a comment before `->` is considered.

use std::collections::VecDeque;

use crate::diag::{self, Diagnostic};

/// Token kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tok {
    Eof,
    /// A lexical error; the message is in [`Lexer::error`].
    Error,
    Name,
    Number,
    Str,
    // Lua 5.4 keywords.
    And,
    Break,
    Do,
    Else,
    Elseif,
    End,
    False,
    For,
    Function,
    Goto,
    If,
    In,
    Local,
    Nil,
    Not,
    Or,
    Repeat,
    Return,
    Then,
    True,
    Until,
    While,
    // Wippy's reserved words.
    Interface,
    As,
    Is,
    Fun,
    Asserts,
    Readonly,
    Typeof,
    Keyof,
    Extends,
    // Symbols.
    Plus,
    Minus,
    Star,
    Slash,
    DSlash,
    Percent,
    Caret,
    Hash,
    Amp,
    Tilde,
    Pipe,
    Shl,
    Shr,
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
    Assign,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    DColon,
    Semi,
    Colon,
    Comma,
    Dot,
    Concat,
    Dots,
    Arrow,
    Question,
    Bang,
    At,
}

impl Tok {
    /// One of Wippy's nine reserved words (usable after `.`/`:`, as a
    /// table-constructor key and as a record field name).
    pub(crate) fn is_wippy_reserved(self) -> bool {
        matches!(
            self,
            Tok::Interface
                | Tok::As
                | Tok::Is
                | Tok::Fun
                | Tok::Asserts
                | Tok::Readonly
                | Tok::Typeof
                | Tok::Keyof
                | Tok::Extends
        )
    }
}

fn keyword(word: &[u8]) -> Option<Tok> {
    Some(match word {
        b"and" => Tok::And,
        b"break" => Tok::Break,
        b"do" => Tok::Do,
        b"else" => Tok::Else,
        b"elseif" => Tok::Elseif,
        b"end" => Tok::End,
        b"false" => Tok::False,
        b"for" => Tok::For,
        b"function" => Tok::Function,
        b"goto" => Tok::Goto,
        b"if" => Tok::If,
        b"in" => Tok::In,
        b"local" => Tok::Local,
        b"nil" => Tok::Nil,
        b"not" => Tok::Not,
        b"or" => Tok::Or,
        b"repeat" => Tok::Repeat,
        b"return" => Tok::Return,
        b"then" => Tok::Then,
        b"true" => Tok::True,
        b"until" => Tok::Until,
        b"while" => Tok::While,
        b"interface" => Tok::Interface,
        b"as" => Tok::As,
        b"is" => Tok::Is,
        b"fun" => Tok::Fun,
        b"asserts" => Tok::Asserts,
        b"readonly" => Tok::Readonly,
        b"typeof" => Tok::Typeof,
        b"keyof" => Tok::Keyof,
        b"extends" => Tok::Extends,
        _ => return None,
    })
}

/// The identifier no source may use (§3.3 rule 5).
pub(crate) const RESERVED_NAME: &str = "__warren_types";

/// One token: kind, byte span `start..end`, 1-based line and byte column.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub col: u32,
    /// For [`Tok::DColon`]: it opens a `::name::` label.
    pub label: bool,
}

/// The on-demand lexer.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    buf: VecDeque<Token>,
    /// The first lexical error, once met.
    pub error: Option<Diagnostic>,
    /// End of the last consumed token.
    pub prev_end: usize,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self {
            src,
            b: src.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
            buf: VecDeque::with_capacity(8),
            error: None,
            prev_end: 0,
        }
    }

    /// The source text of a token (empty for a cut at a non-boundary, which
    /// never happens: tokens start and end on ASCII bytes or at the end).
    pub(crate) fn text(&self, t: &Token) -> &'a str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    /// The whole source.
    pub(crate) fn source(&self) -> &'a str {
        self.src
    }

    /// The source between two byte offsets (empty if not at boundaries).
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    /// The `n`-th token ahead (0 = current).
    #[inline]
    pub(crate) fn peek(&mut self, n: usize) -> Token {
        // The parser asks for the current token many times over; only the
        // first ask scans (out of line: the scanner is large).
        match self.buf.get(n) {
            Some(t) => *t,
            None => self.scan_to(n),
        }
    }

    /// Scans until the `n`-th token ahead is buffered, and answers it.
    #[inline(never)]
    fn scan_to(&mut self, n: usize) -> Token {
        while self.buf.len() <= n {
            let t = self.scan();
            self.buf.push_back(t);
        }
        self.buf[n]
    }

    /// The current token's kind.
    pub(crate) fn kind(&mut self) -> Tok {
        self.peek(0).kind
    }

    /// Consumes the current token.
    pub(crate) fn advance(&mut self) -> Token {
        let t = self.peek(0);
        if t.kind != Tok::Eof && t.kind != Tok::Error {
            self.buf.pop_front();
            self.prev_end = t.end;
        }
        t
    }

    /// Consumes one `>` closing a generic list: a `>`, or the first half of
    /// `>>` or `>=`, which leaves `>` or `=` as the current token.
    pub(crate) fn eat_gt(&mut self) -> bool {
        let t = self.peek(0);
        let rest = match t.kind {
            Tok::Gt => {
                self.advance();
                return true;
            }
            Tok::Shr => Tok::Gt,
            Tok::Ge => Tok::Assign,
            _ => return false,
        };
        self.buf[0] = Token {
            kind: rest,
            start: t.start + 1,
            col: t.col + 1,
            ..t
        };
        self.prev_end = t.start + 1;
        true
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn cur(&self) -> u8 {
        self.at(self.pos)
    }

    fn eof(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// Skips one line break (`\n`, `\r`, `\r\n` or `\n\r`, as Lua counts).
    fn newline(&mut self) {
        let c = self.cur();
        self.pos += 1;
        let d = self.cur();
        if (d == b'\n' || d == b'\r') && d != c {
            self.pos += 1;
        }
        self.line = self.line.saturating_add(1);
        self.line_start = self.pos;
    }

    fn col_of(&self, pos: usize) -> u32 {
        u32::try_from(pos - self.line_start + 1).unwrap_or(u32::MAX)
    }

    fn fail(
        &mut self,
        start: usize,
        line: u32,
        col: u32,
        code: &'static str,
        msg: String,
    ) -> Token {
        if self.error.is_none() {
            self.error = Some(Diagnostic::new(code, line, col, msg));
        }
        self.pos = self.b.len();
        Token {
            kind: Tok::Error,
            start,
            end: start,
            line,
            col,
            label: false,
        }
    }

    /// Text from `start` to the current position, quoted for "near".
    fn near_from(&self, start: usize) -> String {
        let mut end = self.pos.min(self.b.len());
        while !self.src.is_char_boundary(end) {
            end -= 1;
        }
        diag::quote(self.src.get(start..end).unwrap_or(""))
    }

    fn scan(&mut self) -> Token {
        if self.error.is_some() {
            let (line, col) = (self.line, self.col_of(self.pos.min(self.b.len())));
            let at = self.pos.min(self.b.len());
            return Token {
                kind: Tok::Error,
                start: at,
                end: at,
                line,
                col,
                label: false,
            };
        }
        // Blanks and comments.
        loop {
            match self.cur() {
                b'\n' | b'\r' if !self.eof() => self.newline(),
                b' ' | b'\t' | 0x0b | 0x0c => self.pos += 1,
                b'-' if self.at(self.pos + 1) == b'-' => {
                    let (start, line, col) = (self.pos, self.line, self.col_of(self.pos));
                    self.pos += 2;
                    if self.cur() == b'[' {
                        let level = self.long_level();
                        if level >= 2 {
                            if let Err(t) = self.long_body(level, start, line, col, "comment") {
                                return t;
                            }
                            continue;
                        }
                    }
                    while !self.eof() && self.cur() != b'\n' && self.cur() != b'\r' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let start = self.pos;
        let line = self.line;
        let col = self.col_of(start);
        let mk = |kind, end| Token {
            kind,
            start,
            end,
            line,
            col,
            label: false,
        };
        if self.eof() {
            return mk(Tok::Eof, start);
        }
        let c = self.cur();
        let n = self.at(start + 1);
        if is_name_start(c) {
            while is_name_char(self.cur()) {
                self.pos += 1;
            }
            let word = &self.b[start..self.pos];
            if let Some(k) = keyword(word) {
                return mk(k, self.pos);
            }
            if word == RESERVED_NAME.as_bytes() {
                return self.fail(
                    start,
                    line,
                    col,
                    diag::RESERVED,
                    format!("'{RESERVED_NAME}' is reserved for Warren's type values"),
                );
            }
            return mk(Tok::Name, self.pos);
        }
        if c.is_ascii_digit() || (c == b'.' && n.is_ascii_digit()) {
            return self.number(start, line, col);
        }
        let (kind, len) = match c {
            b'"' | b'\'' => return self.short_string(start, line, col),
            b'[' => {
                let level = self.long_level();
                if level >= 2 {
                    return match self.long_body(level, start, line, col, "string") {
                        Ok(()) => mk(Tok::Str, self.pos),
                        Err(t) => t,
                    };
                }
                if level == 0 {
                    self.pos += 1;
                    while self.cur() == b'=' {
                        self.pos += 1;
                    }
                    let near = self.near_from(start);
                    return self.fail(
                        start,
                        line,
                        col,
                        diag::SYNTAX,
                        format!("invalid long string delimiter near {near}"),
                    );
                }
                (Tok::LBracket, 1)
            }
            b'+' => (Tok::Plus, 1),
            b'-' if n == b'>' => (Tok::Arrow, 2),
            b'-' => (Tok::Minus, 1),
            b'*' => (Tok::Star, 1),
            b'/' if n == b'/' => (Tok::DSlash, 2),
            b'/' => (Tok::Slash, 1),
            b'%' => (Tok::Percent, 1),
            b'^' => (Tok::Caret, 1),
            b'#' => (Tok::Hash, 1),
            b'&' => (Tok::Amp, 1),
            b'~' if n == b'=' => (Tok::Ne, 2),
            b'~' => (Tok::Tilde, 1),
            b'|' => (Tok::Pipe, 1),
            b'<' if n == b'<' => (Tok::Shl, 2),
            b'<' if n == b'=' => (Tok::Le, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if n == b'>' => (Tok::Shr, 2),
            b'>' if n == b'=' => (Tok::Ge, 2),
            b'>' => (Tok::Gt, 1),
            b'=' if n == b'=' => (Tok::Eq, 2),
            b'=' => (Tok::Assign, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b']' => (Tok::RBracket, 1),
            b';' => (Tok::Semi, 1),
            b':' if n == b':' => {
                self.pos += 2;
                let mut t = mk(Tok::DColon, self.pos);
                t.label = self.label_follows();
                return t;
            }
            b':' => (Tok::Colon, 1),
            b',' => (Tok::Comma, 1),
            b'.' if n == b'.' && self.at(start + 2) == b'.' => (Tok::Dots, 3),
            b'.' if n == b'.' => (Tok::Concat, 2),
            b'.' => (Tok::Dot, 1),
            b'?' => (Tok::Question, 1),
            b'!' => (Tok::Bang, 1),
            b'@' => (Tok::At, 1),
            _ => {
                let shown = if (0x20..0x7f).contains(&c) {
                    format!("'{}'", char::from(c))
                } else {
                    format!("'<\\{c}>'")
                };
                return self.fail(
                    start,
                    line,
                    col,
                    diag::SYNTAX,
                    format!("unexpected symbol near {shown}"),
                );
            }
        };
        self.pos += len;
        mk(kind, self.pos)
    }

    /// After `::`: spaces/tabs, a Name, spaces/tabs and `::` on this line.
    fn label_follows(&self) -> bool {
        let mut i = self.pos;
        while matches!(self.at(i), b' ' | b'\t') {
            i += 1;
        }
        if !is_name_start(self.at(i)) {
            return false;
        }
        while is_name_char(self.at(i)) {
            i += 1;
        }
        while matches!(self.at(i), b' ' | b'\t') {
            i += 1;
        }
        self.at(i) == b':' && self.at(i + 1) == b':'
    }

    /// At `[`: 2 + the number of `=` for a long bracket `[==[`, 1 for a
    /// lone `[`, 0 for `[=` not followed by `[`. Does not move.
    fn long_level(&self) -> usize {
        let mut i = self.pos + 1;
        while self.at(i) == b'=' {
            i += 1;
        }
        let count = i - self.pos - 1;
        if self.at(i) == b'[' {
            count + 2
        } else if count == 0 {
            1
        } else {
            0
        }
    }

    /// Reads a long string or comment from its opening bracket.
    fn long_body(
        &mut self,
        level: usize,
        start: usize,
        line: u32,
        col: u32,
        what: &str,
    ) -> Result<(), Token> {
        let eqs = level - 2;
        self.pos += eqs + 2;
        loop {
            if self.eof() {
                return Err(self.fail(
                    start,
                    line,
                    col,
                    diag::SYNTAX,
                    format!("unfinished long {what} (starting at line {line}) near <eof>"),
                ));
            }
            match self.cur() {
                b']' => {
                    let mut i = self.pos + 1;
                    while self.at(i) == b'=' {
                        i += 1;
                    }
                    if i - self.pos - 1 == eqs && self.at(i) == b']' {
                        self.pos = i + 1;
                        return Ok(());
                    }
                    self.pos += 1;
                }
                b'\n' | b'\r' => self.newline(),
                _ => self.pos += 1,
            }
        }
    }

    fn short_string(&mut self, start: usize, line: u32, col: u32) -> Token {
        let quote = self.cur();
        self.pos += 1;
        loop {
            if self.eof() {
                return self.fail(
                    start,
                    line,
                    col,
                    diag::SYNTAX,
                    "unfinished string near <eof>".to_string(),
                );
            }
            let c = self.cur();
            if c == quote {
                self.pos += 1;
                return Token {
                    kind: Tok::Str,
                    start,
                    end: self.pos,
                    line,
                    col,
                    label: false,
                };
            }
            match c {
                b'\n' | b'\r' => {
                    let near = self.near_from(start);
                    return self.fail(
                        start,
                        line,
                        col,
                        diag::SYNTAX,
                        format!("unfinished string near {near}"),
                    );
                }
                b'\\' => {
                    let esc_at = self.pos;
                    self.pos += 1;
                    if let Err(msg) = self.escape() {
                        let near = self.near_from(esc_at);
                        return self.fail(
                            start,
                            line,
                            col,
                            diag::SYNTAX,
                            format!("{msg} near {near}"),
                        );
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// One escape after `\`, as Lua 5.4 reads it.
    fn escape(&mut self) -> Result<(), &'static str> {
        if self.eof() {
            return Ok(());
        }
        let c = self.cur();
        match c {
            b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'"' | b'\'' => {
                self.pos += 1;
            }
            b'\n' | b'\r' => self.newline(),
            b'x' => {
                self.pos += 1;
                for _ in 0..2 {
                    if !self.cur().is_ascii_hexdigit() {
                        if !self.eof() {
                            self.pos += 1;
                        }
                        return Err("hexadecimal digit expected");
                    }
                    self.pos += 1;
                }
            }
            b'z' => {
                self.pos += 1;
                loop {
                    match self.cur() {
                        b'\n' | b'\r' if !self.eof() => self.newline(),
                        b' ' | b'\t' | 0x0b | 0x0c => self.pos += 1,
                        _ => break,
                    }
                }
            }
            b'u' => {
                self.pos += 1;
                if self.cur() != b'{' {
                    if !self.eof() {
                        self.pos += 1;
                    }
                    return Err("missing '{' in \\u{xxxx}");
                }
                self.pos += 1;
                let mut value: u64 = 0;
                let mut digits = 0;
                while self.cur().is_ascii_hexdigit() {
                    value =
                        value * 16 + u64::from(char::from(self.cur()).to_digit(16).unwrap_or(0));
                    if value > 0x7FFF_FFFF {
                        self.pos += 1;
                        return Err("UTF-8 value too large");
                    }
                    digits += 1;
                    self.pos += 1;
                }
                if digits == 0 {
                    if !self.eof() {
                        self.pos += 1;
                    }
                    return Err("hexadecimal digit expected");
                }
                if self.cur() != b'}' {
                    if !self.eof() {
                        self.pos += 1;
                    }
                    return Err("missing '}' in \\u{xxxx}");
                }
                self.pos += 1;
            }
            b'0'..=b'9' => {
                let mut value: u32 = 0;
                let mut n = 0;
                while n < 3 && self.cur().is_ascii_digit() {
                    value = value * 10 + u32::from(self.cur() - b'0');
                    self.pos += 1;
                    n += 1;
                }
                if value > 255 {
                    return Err("decimal escape too large");
                }
            }
            _ => {
                if !self.eof() {
                    // Step over a whole char so the quoted text stays valid.
                    let len = self
                        .src
                        .get(self.pos..)
                        .and_then(|s| s.chars().next())
                        .map_or(1, char::len_utf8);
                    self.pos += len;
                }
                return Err("invalid escape sequence");
            }
        }
        Ok(())
    }

    /// A numeral, read as Lua's lexer does, then checked as `lua_stringtonumber`.
    fn number(&mut self, start: usize, line: u32, col: u32) -> Token {
        let hex = self.cur() == b'0' && matches!(self.at(start + 1), b'x' | b'X');
        let expo: &[u8; 2] = if hex { b"Pp" } else { b"Ee" };
        if hex {
            self.pos += 2;
        }
        loop {
            let c = self.cur();
            if expo.contains(&c) {
                self.pos += 1;
                if matches!(self.cur(), b'+' | b'-') {
                    self.pos += 1;
                }
            } else if c.is_ascii_hexdigit() || c == b'.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if is_name_start(self.cur()) {
            self.pos += 1;
        }
        let text = &self.b[start..self.pos];
        if valid_numeral(text) {
            Token {
                kind: Tok::Number,
                start,
                end: self.pos,
                line,
                col,
                label: false,
            }
        } else {
            let near = self.near_from(start);
            self.fail(
                start,
                line,
                col,
                diag::SYNTAX,
                format!("malformed number near {near}"),
            )
        }
    }
}

/// Whether Lua 5.4 converts this numeral (decimal or hex, int or float).
fn valid_numeral(t: &[u8]) -> bool {
    type Digit = fn(u8) -> bool;
    let (digits_ok, exp_marks, rest): (Digit, &[u8], &[u8]) =
        if t.len() >= 2 && t[0] == b'0' && (t[1] == b'x' || t[1] == b'X') {
            (|c: u8| c.is_ascii_hexdigit(), b"pP", &t[2..])
        } else {
            (|c: u8| c.is_ascii_digit(), b"eE", t)
        };
    let mut i = 0;
    let mut mantissa = 0;
    while i < rest.len() && digits_ok(rest[i]) {
        i += 1;
        mantissa += 1;
    }
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        while i < rest.len() && digits_ok(rest[i]) {
            i += 1;
            mantissa += 1;
        }
    }
    if mantissa == 0 {
        return false;
    }
    if i < rest.len() && exp_marks.contains(&rest[i]) {
        i += 1;
        if i < rest.len() && (rest[i] == b'+' || rest[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < rest.len() && rest[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == rest.len()
}
