//! Recursive-descent parser for Lua 5.4 plus Wippy's additions (§1.2):
//! statements and expressions here, type syntax in [`crate::typesyn`].
//!
//! The parser builds no tree of the program: it validates the source and
//! records what to erase ([`Erasure`]), the type expressions it reads (as
//! [`Syn`] nodes), the type scopes and declarations, and the reads of
//! global names that may be run-time type references ([`Ref`]). Recursion is bounded by [`crate::MAX_NESTING`]:
//! every statement, sub-expression and type counts one level, as Lua's
//! `enterlevel` does.

use crate::diag::{self, Diagnostic};
use crate::lexer::{Lexer, Tok, Token};
use crate::scope::{self, Func, ScopeError};
use crate::syn::{DeclSyn, NO_SCOPE, Ref, ScopeId, Syn, SynId, TScope, Usage};
use crate::typesyn::pos;
use crate::{Erasure, MAX_NESTING};

pub(crate) type R<T> = Result<T, Diagnostic>;

/// What a suffixed expression turned out to be (for statements).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpKind {
    /// A plain name (assignable).
    Name,
    /// `a.b` or `a[b]` (assignable).
    Index,
    /// A call (valid as a statement).
    Call,
    /// Anything else.
    Other,
}

/// Binary operator priorities (left, right), as Lua 5.4's `priority`.
fn binary_priority(t: Tok) -> Option<(u8, u8)> {
    Some(match t {
        Tok::Or => (1, 1),
        Tok::And => (2, 2),
        Tok::Lt | Tok::Gt | Tok::Le | Tok::Ge | Tok::Ne | Tok::Eq => (3, 3),
        Tok::Pipe => (4, 4),
        Tok::Tilde => (5, 5),
        Tok::Amp => (6, 6),
        Tok::Shl | Tok::Shr => (7, 7),
        Tok::Concat => (9, 8),
        Tok::Plus | Tok::Minus => (10, 10),
        Tok::Star | Tok::Slash | Tok::DSlash | Tok::Percent => (11, 11),
        Tok::Caret => (14, 13),
        _ => return None,
    })
}

const UNARY_PRIORITY: u8 = 12;

/// The parser state.
pub(crate) struct Parser<'a> {
    pub lx: Lexer<'a>,
    pub out: Erasure,
    depth: usize,
    funcs: Vec<Func<'a>>,
    /// Type expression nodes.
    pub syn: Vec<Syn<'a>>,
    /// Type scopes (0: the chunk's main block).
    pub scopes: Vec<TScope<'a>>,
    /// The current type scope.
    pub tscope: ScopeId,
    /// Type declarations, in source order.
    pub decls: Vec<DeclSyn<'a>>,
    /// Type expressions outside declarations (annotations, casts, bounds).
    pub roots: Vec<SynId>,
    /// Value-position reads and assignments of global names.
    pub refs: Vec<Ref<'a>>,
    /// Above 0 while reading expressions inside type syntax (`typeof`,
    /// validator arguments): erased code, so no references are recorded.
    pub in_type: u32,
    /// Type diagnostics found while parsing (T002).
    pub diags: Vec<Diagnostic>,
}

/// A suffixed expression: its kind, its name when it is a plain name, and
/// the [`Ref`] recorded for that name (a global).
type Suffixed<'a> = (ExpKind, Option<&'a str>, Option<usize>);

/// How Lua names a token kind in messages.
pub(crate) fn tok_name(t: Tok) -> &'static str {
    match t {
        Tok::Eof => "<eof>",
        Tok::Error => "<error>",
        Tok::Name => "<name>",
        Tok::Number => "<number>",
        Tok::Str => "<string>",
        Tok::And => "'and'",
        Tok::Break => "'break'",
        Tok::Do => "'do'",
        Tok::Else => "'else'",
        Tok::Elseif => "'elseif'",
        Tok::End => "'end'",
        Tok::False => "'false'",
        Tok::For => "'for'",
        Tok::Function => "'function'",
        Tok::Goto => "'goto'",
        Tok::If => "'if'",
        Tok::In => "'in'",
        Tok::Local => "'local'",
        Tok::Nil => "'nil'",
        Tok::Not => "'not'",
        Tok::Or => "'or'",
        Tok::Repeat => "'repeat'",
        Tok::Return => "'return'",
        Tok::Then => "'then'",
        Tok::True => "'true'",
        Tok::Until => "'until'",
        Tok::While => "'while'",
        Tok::Interface => "'interface'",
        Tok::As => "'as'",
        Tok::Is => "'is'",
        Tok::Fun => "'fun'",
        Tok::Asserts => "'asserts'",
        Tok::Readonly => "'readonly'",
        Tok::Typeof => "'typeof'",
        Tok::Keyof => "'keyof'",
        Tok::Extends => "'extends'",
        Tok::Plus => "'+'",
        Tok::Minus => "'-'",
        Tok::Star => "'*'",
        Tok::Slash => "'/'",
        Tok::DSlash => "'//'",
        Tok::Percent => "'%'",
        Tok::Caret => "'^'",
        Tok::Hash => "'#'",
        Tok::Amp => "'&'",
        Tok::Tilde => "'~'",
        Tok::Pipe => "'|'",
        Tok::Shl => "'<<'",
        Tok::Shr => "'>>'",
        Tok::Eq => "'=='",
        Tok::Ne => "'~='",
        Tok::Le => "'<='",
        Tok::Ge => "'>='",
        Tok::Lt => "'<'",
        Tok::Gt => "'>'",
        Tok::Assign => "'='",
        Tok::LParen => "'('",
        Tok::RParen => "')'",
        Tok::LBrace => "'{'",
        Tok::RBrace => "'}'",
        Tok::LBracket => "'['",
        Tok::RBracket => "']'",
        Tok::DColon => "'::'",
        Tok::Semi => "';'",
        Tok::Colon => "':'",
        Tok::Comma => "','",
        Tok::Dot => "'.'",
        Tok::Concat => "'..'",
        Tok::Dots => "'...'",
        Tok::Arrow => "'->'",
        Tok::Question => "'?'",
        Tok::Bang => "'!'",
        Tok::At => "'@'",
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self {
            lx: Lexer::new(src),
            out: Erasure::default(),
            // Lua's own count starts one level in (the main function), so
            // a chunk accepted here never hits Lua's C-stack limit.
            depth: 1,
            funcs: Vec::new(),
            syn: Vec::new(),
            scopes: Vec::new(),
            tscope: NO_SCOPE,
            decls: Vec::new(),
            roots: Vec::new(),
            refs: Vec::new(),
            in_type: 0,
            diags: Vec::new(),
        }
    }

    // ---- helpers -------------------------------------------------------

    pub(crate) fn kind(&mut self) -> Tok {
        self.lx.kind()
    }

    pub(crate) fn peek_kind(&mut self, n: usize) -> Tok {
        self.lx.peek(n).kind
    }

    pub(crate) fn test_next(&mut self, k: Tok) -> bool {
        if self.kind() == k {
            self.lx.advance();
            true
        } else {
            false
        }
    }

    /// How a token is shown after "near"/"found".
    pub(crate) fn shown(&self, t: &Token) -> String {
        match t.kind {
            Tok::Eof => "<eof>".to_string(),
            _ => diag::quote(self.lx.text(t)),
        }
    }

    /// A P0001 at token `t` (the lexer's own error for an error token).
    pub(crate) fn error_at(&self, t: &Token, message: String) -> Diagnostic {
        if let Some(e) = self.lx.error.as_ref().filter(|_| t.kind == Tok::Error) {
            return e.clone();
        }
        Diagnostic::new(diag::SYNTAX, t.line, t.col, message)
    }

    /// `<msg> near <current token>`.
    pub(crate) fn error_near(&mut self, msg: &str) -> Diagnostic {
        let t = self.lx.peek(0);
        let m = format!("{msg} near {}", self.shown(&t));
        self.error_at(&t, m)
    }

    /// `'<what>' expected near <current token>`.
    pub(crate) fn error_expected(&mut self, what: Tok) -> Diagnostic {
        self.error_near(&format!("{} expected", tok_name(what)))
    }

    /// `expected <what>, found <current token>` (type syntax).
    pub(crate) fn error_found(&mut self, what: &str) -> Diagnostic {
        let t = self.lx.peek(0);
        let m = format!("expected {what}, found {}", self.shown(&t));
        self.error_at(&t, m)
    }

    pub(crate) fn check_next(&mut self, k: Tok) -> R<Token> {
        if self.kind() == k {
            Ok(self.lx.advance())
        } else {
            Err(self.error_expected(k))
        }
    }

    /// Type-syntax flavour of [`Self::check_next`].
    pub(crate) fn expect(&mut self, k: Tok) -> R<Token> {
        if self.kind() == k {
            Ok(self.lx.advance())
        } else {
            Err(self.error_found(tok_name(k)))
        }
    }

    pub(crate) fn check_match(&mut self, what: Tok, who: Tok, line: u32) -> R<()> {
        let t = self.lx.peek(0);
        if t.kind == what {
            self.lx.advance();
            return Ok(());
        }
        if t.line == line {
            return Err(self.error_expected(what));
        }
        let msg = format!(
            "{} expected (to close {} at line {line})",
            tok_name(what),
            tok_name(who)
        );
        Err(self.error_near(&msg))
    }

    /// A Name (`<name> expected` otherwise).
    pub(crate) fn check_name(&mut self) -> R<&'a str> {
        let t = self.lx.peek(0);
        if t.kind == Tok::Name {
            self.lx.advance();
            Ok(self.lx.text(&t))
        } else {
            Err(self.error_expected(Tok::Name))
        }
    }

    /// A Name or one of Wippy's reserved words (after `.`/`:`).
    fn check_field_name(&mut self) -> R<()> {
        let k = self.kind();
        if k == Tok::Name || k.is_wippy_reserved() {
            self.lx.advance();
            Ok(())
        } else {
            Err(self.error_expected(Tok::Name))
        }
    }

    /// One nesting level more (P0002 past the limit).
    pub(crate) fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let t = self.lx.peek(0);
            return Err(Diagnostic::new(
                diag::NESTING,
                t.line,
                t.col,
                format!("chunk has too many syntax levels (limit is {MAX_NESTING})"),
            ));
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Records a span to blank.
    pub(crate) fn erase(&mut self, start: usize, end: usize) {
        if end > start {
            self.out.spans.push((start, end));
        }
    }

    fn scope_error(&mut self, e: ScopeError) -> Diagnostic {
        match e.at {
            Some((line, col)) => Diagnostic::new(diag::SYNTAX, line, col.max(1), e.message),
            None => {
                let t = self.lx.peek(0);
                Diagnostic::new(diag::SYNTAX, t.line, t.col, e.message)
            }
        }
    }

    fn func(&mut self) -> R<&mut Func<'a>> {
        match self.funcs.last_mut() {
            Some(f) => Ok(f),
            None => Err(Diagnostic::new(
                diag::SYNTAX,
                1,
                1,
                "internal: no function".into(),
            )),
        }
    }

    fn enter_block(&mut self, is_loop: bool) -> R<()> {
        self.func()?.enter_block(is_loop);
        self.push_scope();
        Ok(())
    }

    fn leave_block(&mut self) -> R<()> {
        self.tscope = self
            .scopes
            .get(self.tscope as usize)
            .map_or(NO_SCOPE, |s| s.parent);
        let r = self.func()?.leave_block();
        r.map_err(|e| self.scope_error(e))
    }

    /// The annotation of the local `name` resolves to, if it has one.
    pub(crate) fn local_annot(&self, name: &str) -> Option<SynId> {
        scope::find_local(&self.funcs, name).and_then(|l| l.annot)
    }

    /// Records a read (or assignment) of the global `name` at token `t`.
    fn add_ref(&mut self, t: &Token, name: &'a str, usage: Usage<'a>) -> usize {
        self.refs.push(Ref {
            at: t.start,
            pos: pos(t),
            name,
            usage,
            scope: self.tscope,
        });
        self.refs.len() - 1
    }

    fn add_locals(&mut self, names: &[(&'a str, bool, Option<SynId>)]) -> R<()> {
        let f = self.func()?;
        if !f.room_for(names.len()) {
            let line = f.line;
            let whose = if line == 0 {
                "main function".to_string()
            } else {
                format!("function at line {line}")
            };
            return Err(self.error_near(&format!(
                "too many local variables (limit is {}) in {whose}",
                scope::MAX_LOCALS
            )));
        }
        for &(n, ro, annot) in names {
            f.add_local(n, ro, annot);
        }
        Ok(())
    }

    // ---- chunk and blocks ------------------------------------------------

    /// The main chunk.
    pub(crate) fn chunk(&mut self) -> R<()> {
        self.funcs.push(Func::new(true, 0));
        self.enter_block(false)?;
        self.statlist()?;
        if self.kind() != Tok::Eof {
            return Err(self.error_expected(Tok::Eof));
        }
        self.leave_block()?;
        self.funcs.pop();
        Ok(())
    }

    fn block_follow(&mut self, with_until: bool) -> bool {
        match self.kind() {
            Tok::Else | Tok::Elseif | Tok::End | Tok::Eof => true,
            Tok::Until => with_until,
            _ => false,
        }
    }

    fn statlist(&mut self) -> R<()> {
        while !self.block_follow(true) {
            if self.kind() == Tok::Return {
                return self.statement();
            }
            self.statement()?;
        }
        Ok(())
    }

    fn block(&mut self) -> R<()> {
        self.enter_block(false)?;
        self.statlist()?;
        self.leave_block()
    }

    /// `type Name` followed by `=` or `<` starts a declaration.
    fn at_typedecl(&mut self) -> bool {
        let t = self.lx.peek(0);
        t.kind == Tok::Name
            && self.lx.text(&t) == "type"
            && self.peek_kind(1) == Tok::Name
            && matches!(self.peek_kind(2), Tok::Assign | Tok::Lt)
    }

    // ---- statements ------------------------------------------------------

    fn statement(&mut self) -> R<()> {
        self.enter()?;
        let t = self.lx.peek(0);
        let line = t.line;
        match t.kind {
            Tok::Semi => {
                self.lx.advance();
            }
            Tok::If => self.if_stat(line)?,
            Tok::While => {
                self.lx.advance();
                self.expr()?;
                self.enter_block(true)?;
                self.check_next(Tok::Do)?;
                self.block()?;
                self.check_match(Tok::End, Tok::While, line)?;
                self.leave_block()?;
            }
            Tok::Do => {
                self.lx.advance();
                self.block()?;
                self.check_match(Tok::End, Tok::Do, line)?;
            }
            Tok::For => self.for_stat(line)?,
            Tok::Repeat => {
                self.lx.advance();
                self.enter_block(true)?;
                self.enter_block(false)?;
                self.statlist()?;
                self.check_match(Tok::Until, Tok::Repeat, line)?;
                self.expr()?;
                self.leave_block()?;
                self.leave_block()?;
            }
            Tok::Function => self.func_stat(line)?,
            Tok::Local => {
                self.lx.advance();
                if self.test_next(Tok::Function) {
                    let name = self.check_name()?;
                    self.add_locals(&[(name, false, None)])?;
                    self.body(false, line)?;
                } else {
                    self.local_stat()?;
                }
            }
            Tok::DColon if t.label => {
                self.lx.advance();
                let name = self.check_name()?;
                self.label_stat(name, line, t.col)?;
            }
            Tok::Return => {
                self.lx.advance();
                if !self.block_follow(true) && self.kind() != Tok::Semi {
                    self.explist()?;
                }
                self.test_next(Tok::Semi);
            }
            Tok::Break => {
                self.lx.advance();
                self.func()?.goto("break", t.line, t.col);
            }
            Tok::Goto => {
                self.lx.advance();
                let name = self.check_name()?;
                self.func()?.goto(name, t.line, t.col);
            }
            Tok::Interface => self.interface_decl()?,
            Tok::Name if self.at_typedecl() => self.type_decl()?,
            _ => self.expr_stat()?,
        }
        self.leave();
        Ok(())
    }

    fn label_stat(&mut self, name: &'a str, line: u32, col: u32) -> R<()> {
        self.check_next(Tok::DColon)?;
        // Skip other no-op statements (type declarations erase to `;`).
        loop {
            let t = self.lx.peek(0);
            let noop = match t.kind {
                Tok::Semi | Tok::Interface => true,
                Tok::DColon => t.label,
                Tok::Name => self.at_typedecl(),
                _ => false,
            };
            if !noop {
                break;
            }
            self.statement()?;
        }
        let last = self.block_follow(false);
        let r = self.func()?.label(name, line, col, last);
        r.map_err(|e| self.scope_error(e))
    }

    fn if_stat(&mut self, line: u32) -> R<()> {
        // `if`/`elseif` cond `then` block
        loop {
            self.lx.advance();
            self.expr()?;
            self.check_next(Tok::Then)?;
            self.block()?;
            if self.kind() != Tok::Elseif {
                break;
            }
        }
        if self.test_next(Tok::Else) {
            self.block()?;
        }
        self.check_match(Tok::End, Tok::If, line)
    }

    fn for_stat(&mut self, line: u32) -> R<()> {
        self.lx.advance();
        self.enter_block(true)?;
        let first = self.check_name()?;
        let mut names = vec![(first, false, None)];
        let hidden = match self.kind() {
            Tok::Assign => {
                self.lx.advance();
                self.expr()?;
                self.check_next(Tok::Comma)?;
                self.expr()?;
                if self.test_next(Tok::Comma) {
                    self.expr()?;
                }
                3
            }
            Tok::Comma | Tok::In => {
                while self.test_next(Tok::Comma) {
                    names.push((self.check_name()?, false, None));
                }
                self.check_next(Tok::In)?;
                self.explist()?;
                4
            }
            _ => return Err(self.error_near("'=' or 'in' expected")),
        };
        self.check_next(Tok::Do)?;
        self.add_locals(&vec![("", false, None); hidden])?;
        self.enter_block(false)?;
        self.add_locals(&names)?;
        self.block()?;
        self.leave_block()?;
        self.check_match(Tok::End, Tok::For, line)?;
        self.leave_block()
    }

    fn func_stat(&mut self, line: u32) -> R<()> {
        self.lx.advance();
        let first_tok = self.lx.peek(0);
        let first = self.check_name()?;
        let mut plain = true;
        let mut method = false;
        while self.test_next(Tok::Dot) {
            plain = false;
            self.check_field_name()?;
        }
        if self.test_next(Tok::Colon) {
            plain = false;
            method = true;
            self.check_field_name()?;
        }
        if plain && scope::is_readonly(&self.funcs, first) {
            let t = self.lx.peek(0);
            return Err(self.error_at(&t, format!("attempt to assign to const variable '{first}'")));
        }
        if self.in_type == 0 && scope::find_local(&self.funcs, first).is_none() {
            let usage = if plain {
                Usage::Assign
            } else {
                Usage::FuncName
            };
            self.add_ref(&first_tok, first, usage);
        }
        self.body(method, line)
    }

    fn local_stat(&mut self) -> R<()> {
        let mut names: Vec<(&'a str, bool, Option<SynId>)> = Vec::new();
        let mut closes = 0;
        loop {
            let name = self.check_name()?;
            let mut readonly = false;
            if self.test_next(Tok::Lt) {
                let attr = self.check_name()?;
                self.check_next(Tok::Gt)?;
                match attr {
                    "const" => readonly = true,
                    "close" => {
                        readonly = true;
                        closes += 1;
                        if closes > 1 {
                            let t = self.lx.peek(0);
                            return Err(self.error_at(
                                &t,
                                "multiple to-be-closed variables in local list".into(),
                            ));
                        }
                    }
                    _ => {
                        let t = self.lx.peek(0);
                        return Err(self.error_at(&t, format!("unknown attribute '{attr}'")));
                    }
                }
            }
            let t = self.lx.peek(0);
            let mut annot = None;
            if t.kind == Tok::Colon {
                self.lx.advance();
                annot = Some(self.parse_type_root()?);
                let end = self.lx.prev_end;
                self.erase(t.start, end);
            }
            names.push((name, readonly, annot));
            if !self.test_next(Tok::Comma) {
                break;
            }
        }
        if self.test_next(Tok::Assign) {
            self.explist()?;
        }
        self.add_locals(&names)
    }

    fn expr_stat(&mut self) -> R<()> {
        let first = self.suffixed_exp()?;
        if matches!(self.kind(), Tok::Assign | Tok::Comma) {
            self.check_assignable(first)?;
            while self.test_next(Tok::Comma) {
                let next = self.suffixed_exp()?;
                self.check_assignable(next)?;
            }
            self.check_next(Tok::Assign)?;
            self.explist()?;
            Ok(())
        } else if first.0 == ExpKind::Call {
            Ok(())
        } else {
            Err(self.error_near("syntax error"))
        }
    }

    fn check_assignable(&mut self, (kind, name, r): Suffixed<'a>) -> R<()> {
        match kind {
            ExpKind::Index => Ok(()),
            ExpKind::Name => match name {
                Some(n) if scope::is_readonly(&self.funcs, n) => {
                    let t = self.lx.peek(0);
                    Err(self.error_at(&t, format!("attempt to assign to const variable '{n}'")))
                }
                _ => {
                    if let Some(r) = r.and_then(|i| self.refs.get_mut(i)) {
                        r.usage = Usage::Assign;
                    }
                    Ok(())
                }
            },
            _ => Err(self.error_near("syntax error")),
        }
    }

    // ---- functions --------------------------------------------------------

    /// `[tparams] '(' parlist ')' [retann] block 'end'`.
    pub(crate) fn body(&mut self, method: bool, line: u32) -> R<()> {
        self.funcs.push(Func::new(false, line));
        self.enter_block(false)?;
        if method {
            self.add_locals(&[("self", false, None)])?;
        }
        if self.kind() == Tok::Lt {
            let start = self.lx.peek(0).start;
            let tps = self.type_params(false)?;
            self.roots.extend(tps.iter().filter_map(|p| p.1));
            let end = self.lx.prev_end;
            self.erase(start, end);
        }
        self.check_next(Tok::LParen)?;
        let mut params = Vec::new();
        if self.kind() != Tok::RParen {
            loop {
                let mut name = None;
                match self.kind() {
                    Tok::Name => {
                        name = Some(self.check_name()?);
                    }
                    Tok::Dots => {
                        self.lx.advance();
                        self.func()?.vararg = true;
                    }
                    _ => return Err(self.error_expected(Tok::Name)),
                }
                let t = self.lx.peek(0);
                let mut annot = None;
                if t.kind == Tok::Colon {
                    self.lx.advance();
                    annot = Some(self.parse_type_root()?);
                    let end = self.lx.prev_end;
                    self.erase(t.start, end);
                }
                if let Some(n) = name {
                    params.push((n, false, annot));
                }
                if self.func()?.vararg || !self.test_next(Tok::Comma) {
                    break;
                }
            }
        }
        self.add_locals(&params)?;
        self.check_next(Tok::RParen)?;
        if self.kind() == Tok::Colon {
            self.return_annotation()?;
        }
        self.statlist()?;
        self.check_match(Tok::End, Tok::Function, line)?;
        self.leave_block()?;
        self.funcs.pop();
        Ok(())
    }

    // ---- expressions -----------------------------------------------------

    pub(crate) fn explist(&mut self) -> R<()> {
        self.expr()?;
        while self.test_next(Tok::Comma) {
            self.expr()?;
        }
        Ok(())
    }

    pub(crate) fn expr(&mut self) -> R<()> {
        self.subexpr(0)
    }

    fn subexpr(&mut self, limit: u8) -> R<()> {
        self.enter()?;
        if matches!(self.kind(), Tok::Not | Tok::Minus | Tok::Hash | Tok::Tilde) {
            self.lx.advance();
            self.subexpr(UNARY_PRIORITY)?;
        } else {
            self.simple_exp()?;
        }
        self.binary_rest(limit)?;
        self.leave();
        Ok(())
    }

    /// The binary operators after a left operand, down to `limit`.
    fn binary_rest(&mut self, limit: u8) -> R<()> {
        while let Some((left, right)) = binary_priority(self.kind()) {
            if left <= limit {
                break;
            }
            self.lx.advance();
            self.subexpr(right)?;
        }
        Ok(())
    }

    /// The rest of an expression whose first simple expression (a table
    /// constructor) was read: its casts, then binary operators.
    pub(crate) fn expr_after_simple(&mut self) -> R<()> {
        self.postfix_casts()?;
        self.binary_rest(0)
    }

    fn simple_exp(&mut self) -> R<()> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Number | Tok::Str | Tok::Nil | Tok::True | Tok::False => {
                self.lx.advance();
            }
            Tok::Dots => {
                if !self.func()?.vararg {
                    return Err(self.error_near("cannot use '...' outside a vararg function"));
                }
                self.lx.advance();
            }
            Tok::LBrace => self.constructor()?,
            Tok::Function => {
                self.lx.advance();
                self.body(false, t.line)?;
            }
            _ => {
                self.suffixed_exp()?;
            }
        }
        self.postfix_casts()
    }

    /// Wippy's postfix `as T`, `:: T` and `!`, erased; a `;` replaces the
    /// first byte when the next token is `(` (§3.3 rule 3).
    fn postfix_casts(&mut self) -> R<()> {
        loop {
            let t = self.lx.peek(0);
            match t.kind {
                Tok::As => {
                    self.lx.advance();
                    self.parse_type_root()?;
                }
                Tok::DColon if !t.label => {
                    self.lx.advance();
                    self.parse_type_root()?;
                }
                Tok::Bang => {
                    self.lx.advance();
                }
                _ => return Ok(()),
            }
            let end = self.lx.prev_end;
            self.erase(t.start, end);
            if self.kind() == Tok::LParen {
                self.out.semis.push(t.start);
            }
        }
    }

    fn primary_exp(&mut self) -> R<(ExpKind, Option<&'a str>)> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Name => {
                self.lx.advance();
                Ok((ExpKind::Name, Some(self.lx.text(&t))))
            }
            Tok::LParen => {
                self.lx.advance();
                self.expr()?;
                self.check_match(Tok::RParen, Tok::LParen, t.line)?;
                Ok((ExpKind::Other, None))
            }
            _ => Err(self.error_near("unexpected symbol")),
        }
    }

    fn suffixed_exp(&mut self) -> R<Suffixed<'a>> {
        let first = self.lx.peek(0);
        let (kind, name) = self.primary_exp()?;
        let mut r = None;
        if let Some(n) = name.filter(|_| self.in_type == 0)
            && scope::find_local(&self.funcs, n).is_none()
        {
            let usage = match self.kind() {
                Tok::LParen | Tok::Str | Tok::LBrace => Usage::Call,
                Tok::Colon => Usage::Method,
                Tok::Dot => {
                    let f = self.lx.peek(1);
                    if f.kind == Tok::Name || f.kind.is_wippy_reserved() {
                        Usage::Field(self.lx.text(&f))
                    } else {
                        Usage::Bare
                    }
                }
                _ => Usage::Bare,
            };
            r = Some(self.add_ref(&first, n, usage));
        }
        let mut e = (kind, name, r);
        loop {
            match self.kind() {
                Tok::Dot => {
                    self.lx.advance();
                    self.check_field_name()?;
                    e = (ExpKind::Index, None, None);
                }
                Tok::LBracket => {
                    self.lx.advance();
                    self.expr()?;
                    self.check_next(Tok::RBracket)?;
                    e = (ExpKind::Index, None, None);
                }
                Tok::Colon => {
                    self.lx.advance();
                    self.check_field_name()?;
                    self.call_args()?;
                    e = (ExpKind::Call, None, None);
                }
                Tok::LParen | Tok::Str | Tok::LBrace => {
                    self.call_args()?;
                    e = (ExpKind::Call, None, None);
                }
                _ => return Ok(e),
            }
        }
    }

    fn call_args(&mut self) -> R<()> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Str => {
                self.lx.advance();
                Ok(())
            }
            Tok::LBrace => self.constructor(),
            Tok::LParen => {
                self.lx.advance();
                if self.kind() != Tok::RParen {
                    self.explist()?;
                }
                self.check_match(Tok::RParen, Tok::LParen, t.line)
            }
            _ => Err(self.error_near("function arguments expected")),
        }
    }

    fn constructor(&mut self) -> R<()> {
        let open = self.check_next(Tok::LBrace)?;
        loop {
            if self.kind() == Tok::RBrace {
                break;
            }
            let k = self.kind();
            if (k == Tok::Name || k.is_wippy_reserved()) && self.peek_kind(1) == Tok::Assign {
                self.lx.advance();
                self.lx.advance();
                self.expr()?;
            } else if k == Tok::LBracket {
                self.lx.advance();
                self.expr()?;
                self.check_next(Tok::RBracket)?;
                self.check_next(Tok::Assign)?;
                self.expr()?;
            } else {
                self.expr()?;
            }
            if !self.test_next(Tok::Comma) && !self.test_next(Tok::Semi) {
                break;
            }
        }
        self.check_match(Tok::RBrace, Tok::LBrace, open.line)
    }
}
