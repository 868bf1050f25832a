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
use crate::facts::{self, Entry, Ex, Fact, Facts, FnFacts, Key, LocalFacts, NONE, Val};
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
    /// What the chunk's label and goto scans compared (see
    /// [`crate::scope::MAX_LABEL_WORK`]).
    label_work: crate::scope::LabelWork,
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
    /// What the value checks (T010–T016) need.
    pub facts: Facts<'a>,
}

/// A suffixed expression: its kind, its name when it is a plain name, the
/// [`Ref`] recorded for that name (a global), the field-read fact when it
/// is exactly `local.name`, and its summary.
struct Suffixed<'a> {
    kind: ExpKind,
    name: Option<&'a str>,
    r: Option<usize>,
    field: Option<usize>,
    ex: Ex,
}

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
            label_work: crate::scope::LabelWork::default(),
            syn: Vec::new(),
            scopes: Vec::new(),
            tscope: NO_SCOPE,
            decls: Vec::new(),
            roots: Vec::new(),
            refs: Vec::new(),
            in_type: 0,
            diags: Vec::new(),
            facts: Facts::default(),
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

    /// Adds locals, active from now on; returns the first one's id.
    fn add_locals(&mut self, names: &[(&'a str, bool, Option<SynId>)]) -> R<u32> {
        let first = facts::idx(self.facts.locals.len());
        let f = self
            .funcs
            .last_mut()
            .ok_or_else(|| Diagnostic::new(diag::SYNTAX, 1, 1, "internal: no function".into()))?;
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
        for (i, &(n, ro, annot)) in names.iter().enumerate() {
            f.add_local(n, ro, annot, first.saturating_add(facts::idx(i)));
        }
        for &(name, _, annot) in names {
            self.facts.locals.push(LocalFacts {
                name,
                annot,
                func: NONE,
                reassigned: false,
            });
        }
        Ok(first)
    }

    /// The id of the local `name` resolves to here, if any.
    fn local_id(&self, name: &str) -> Option<u32> {
        scope::find_local(&self.funcs, name).map(|l| l.id)
    }

    /// Marks the local `name` resolves to (if any) as reassigned.
    fn mark_reassigned(&mut self, name: &str) {
        if let Some(l) = self
            .local_id(name)
            .and_then(|id| self.facts.locals.get_mut(id as usize))
        {
            l.reassigned = true;
        }
    }

    /// The current function's facts index ([`NONE`] in the main chunk).
    fn cur_fn(&self) -> u32 {
        self.funcs.last().map_or(NONE, |f| f.facts)
    }

    /// T016: an arithmetic operand that is a boolean, `nil` or a
    /// non-numeric string literal.
    fn arith_operand(&mut self, e: &Ex) {
        if self.in_type > 0 {
            return;
        }
        let what = match e.val {
            Val::Nil => "a nil value",
            Val::True | Val::False => "a boolean value",
            Val::Str => {
                let text = self.lx.slice(e.start, e.end);
                if crate::lit::str_is_numeric(&crate::lit::string(text)) {
                    return;
                }
                "a non-numeric string"
            }
            _ => return,
        };
        self.facts.pending.push(facts::Pending {
            code: diag::T_ARITH,
            span: (e.start, e.end),
            message: format!("arithmetic on {what} always fails"),
        });
    }

    // ---- chunk and blocks ------------------------------------------------

    /// The main chunk.
    pub(crate) fn chunk(&mut self) -> R<()> {
        self.funcs.push(Func::new(true, 0, self.label_work.clone()));
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
        // Each kind in its own function, so that this frame (on the path of
        // every nested block) stays small.
        let r = self.statement_kind();
        self.leave();
        r
    }

    fn statement_kind(&mut self) -> R<()> {
        let t = self.lx.peek(0);
        let line = t.line;
        match t.kind {
            Tok::Semi => {
                self.lx.advance();
                Ok(())
            }
            Tok::If => self.if_stat(line),
            Tok::While => self.while_stat(line),
            Tok::Do => self.do_stat(line),
            Tok::For => self.for_stat(line),
            Tok::Repeat => self.repeat_stat(line),
            Tok::Function => self.func_stat(line),
            Tok::Local => {
                self.lx.advance();
                if self.test_next(Tok::Function) {
                    self.local_function(line)
                } else {
                    self.local_stat()
                }
            }
            Tok::DColon if t.label => self.label_or_goto(t, true),
            Tok::Return => self.return_stat(),
            Tok::Break => {
                self.lx.advance();
                let r = self.func()?.goto("break", t.line, t.col);
                r.map_err(|e| self.scope_error(e))
            }
            Tok::Goto => self.label_or_goto(t, false),
            Tok::Interface => self.interface_decl(),
            Tok::Name if self.at_typedecl() => self.type_decl(),
            _ => self.expr_stat(),
        }
    }

    fn while_stat(&mut self, line: u32) -> R<()> {
        self.lx.advance();
        self.expr()?;
        self.enter_block(true)?;
        self.check_next(Tok::Do)?;
        self.block()?;
        self.check_match(Tok::End, Tok::While, line)?;
        self.leave_block()
    }

    fn do_stat(&mut self, line: u32) -> R<()> {
        self.lx.advance();
        self.block()?;
        self.check_match(Tok::End, Tok::Do, line)
    }

    fn repeat_stat(&mut self, line: u32) -> R<()> {
        self.lx.advance();
        self.enter_block(true)?;
        self.enter_block(false)?;
        self.statlist()?;
        self.check_match(Tok::Until, Tok::Repeat, line)?;
        self.expr()?;
        self.leave_block()?;
        self.leave_block()
    }

    /// `::name::` (`label`) or `goto name`, at token `t`.
    fn label_or_goto(&mut self, t: Token, label: bool) -> R<()> {
        self.lx.advance();
        let name = self.check_name()?;
        if label {
            self.label_stat(name, t.line, t.col)
        } else {
            let r = self.func()?.goto(name, t.line, t.col);
            r.map_err(|e| self.scope_error(e))
        }
    }

    /// `local function Name body`, after `function`.
    #[inline(never)]
    fn local_function(&mut self, line: u32) -> R<()> {
        let nt = self.lx.peek(0);
        let name = self.check_name()?;
        let id = self.add_locals(&[(name, false, None)])?;
        let f = self.body(false, line, (nt.start, nt.end))?;
        if let Some(l) = self.facts.locals.get_mut(id as usize) {
            l.func = f;
        }
        Ok(())
    }

    /// `return [explist] [';']`.
    #[inline(never)]
    fn return_stat(&mut self) -> R<()> {
        self.lx.advance();
        let mut values = Vec::new();
        if !self.block_follow(true) && self.kind() != Tok::Semi {
            values = self.explist()?;
        }
        self.test_next(Tok::Semi);
        let f = self.cur_fn();
        if let Some(ff) = self.facts.funcs.get_mut(f as usize) {
            ff.returns_value |= !values.is_empty();
            if ff.rets.is_some() && ff.live && !values.is_empty() {
                self.facts.facts.push(Fact::Return { func: f, values });
            }
        }
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
        let name_span = (first_tok.start, self.lx.prev_end);
        if plain {
            self.mark_reassigned(first);
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
        self.body(method, line, name_span)?;
        Ok(())
    }

    fn local_stat(&mut self) -> R<()> {
        let mut names: Vec<(&'a str, bool, Option<SynId>)> = Vec::new();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut closes = 0;
        loop {
            let nt = self.lx.peek(0);
            let name = self.check_name()?;
            spans.push((nt.start, nt.end));
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
        let mut values = Vec::new();
        if self.test_next(Tok::Assign) {
            values = self.explist()?;
        }
        let first = self.add_locals(&names)?;
        if self.in_type == 0 {
            self.local_facts(&names, &spans, &values, first);
        }
        Ok(())
    }

    /// The facts of `local names = values` (locals from id `first`).
    fn local_facts(
        &mut self,
        names: &[(&'a str, bool, Option<SynId>)],
        spans: &[(usize, usize)],
        values: &[Ex],
        first: u32,
    ) {
        let multi_tail = values.last().is_some_and(Ex::is_multi);
        for (i, (&(_, _, annot), &name)) in names.iter().zip(spans).enumerate() {
            let Some(annot) = annot else { continue };
            let value = match values.get(i) {
                Some(v) => Some(*v),
                None if multi_tail => continue,
                None => None,
            };
            self.facts.facts.push(Fact::Init {
                annot,
                name,
                local: first.saturating_add(facts::idx(i)),
                value,
            });
        }
        if let (
            [(_, _, None)],
            [
                Ex {
                    val: Val::Func(f), ..
                },
            ],
        ) = (names, values)
            && let Some(l) = self.facts.locals.get_mut(first as usize)
        {
            l.func = *f;
        }
    }

    fn expr_stat(&mut self) -> R<()> {
        let first = self.suffixed_exp()?;
        if matches!(self.kind(), Tok::Assign | Tok::Comma) {
            self.check_assignable(&first)?;
            while self.test_next(Tok::Comma) {
                let next = self.suffixed_exp()?;
                self.check_assignable(&next)?;
            }
            self.check_next(Tok::Assign)?;
            self.explist()?;
            Ok(())
        } else if first.kind == ExpKind::Call {
            Ok(())
        } else {
            Err(self.error_near("syntax error"))
        }
    }

    fn check_assignable(&mut self, s: &Suffixed<'a>) -> R<()> {
        let (kind, name, r) = (s.kind, s.name, s.r);
        match kind {
            ExpKind::Index => {
                if let Some(Fact::Field { write, .. }) =
                    s.field.and_then(|i| self.facts.facts.get_mut(i))
                {
                    *write = true;
                }
                Ok(())
            }
            ExpKind::Name => match name {
                Some(n) if scope::is_readonly(&self.funcs, n) => {
                    let t = self.lx.peek(0);
                    Err(self.error_at(&t, format!("attempt to assign to const variable '{n}'")))
                }
                _ => {
                    if let Some(r) = r.and_then(|i| self.refs.get_mut(i)) {
                        r.usage = Usage::Assign;
                    }
                    if let Some(n) = name {
                        self.mark_reassigned(n);
                    }
                    Ok(())
                }
            },
            _ => Err(self.error_near("syntax error")),
        }
    }

    // ---- functions --------------------------------------------------------

    /// Starts a function body: its scope and its facts (their index).
    #[inline(never)]
    fn enter_fn(&mut self, line: u32, name: (usize, usize)) -> u32 {
        let fid = facts::idx(self.facts.funcs.len());
        self.facts.funcs.push(FnFacts {
            name,
            params: Vec::new(),
            vararg: false,
            rets: None,
            returns_value: false,
            calls_error: false,
            live: self.in_type == 0,
        });
        let mut func = Func::new(false, line, self.label_work.clone());
        func.facts = fid;
        self.funcs.push(func);
        fid
    }

    /// `[tparams] '(' parlist ')' [retann] block 'end'`; `name` is the
    /// span its diagnostics point at. Returns its facts index.
    pub(crate) fn body(&mut self, method: bool, line: u32, name: (usize, usize)) -> R<u32> {
        let fid = self.enter_fn(line, name);
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
        let vararg = self.func()?.vararg;
        if let Some(ff) = self.facts.funcs.get_mut(fid as usize) {
            ff.params = params.iter().map(|p| p.2).collect();
            ff.vararg = vararg;
        }
        self.check_next(Tok::RParen)?;
        if self.kind() == Tok::Colon {
            let rets = self.return_annotation()?;
            if let Some(ff) = self.facts.funcs.get_mut(fid as usize) {
                ff.rets = Some(rets);
            }
        }
        self.statlist()?;
        self.check_match(Tok::End, Tok::Function, line)?;
        self.leave_block()?;
        self.funcs.pop();
        Ok(fid)
    }

    // ---- expressions -----------------------------------------------------

    /// An expression list; each expression's summary.
    pub(crate) fn explist(&mut self) -> R<Vec<Ex>> {
        let mut out = vec![self.expr()?];
        while self.test_next(Tok::Comma) {
            out.push(self.expr()?);
        }
        Ok(out)
    }

    pub(crate) fn expr(&mut self) -> R<Ex> {
        self.subexpr(0)
    }

    fn subexpr(&mut self, limit: u8) -> R<Ex> {
        self.enter()?;
        let t = self.lx.peek(0);
        let left = if matches!(t.kind, Tok::Not | Tok::Minus | Tok::Hash | Tok::Tilde) {
            self.unary(t)?
        } else {
            self.simple_exp()?
        };
        let e = self.binary_rest(limit, left)?;
        self.leave();
        Ok(e)
    }

    /// A unary operator (token `t`) and its operand.
    fn unary(&mut self, t: Token) -> R<Ex> {
        self.lx.advance();
        let operand = self.subexpr(UNARY_PRIORITY)?;
        if t.kind == Tok::Minus {
            self.arith_operand(&operand);
        }
        Ok(Ex::new(Val::Other, t.start, self.lx.prev_end))
    }

    /// The binary operators after a left operand, down to `limit`.
    fn binary_rest(&mut self, limit: u8, mut left: Ex) -> R<Ex> {
        while let Some((lp, rp)) = binary_priority(self.kind()) {
            if lp <= limit {
                break;
            }
            let op = self.lx.advance().kind;
            let right = self.subexpr(rp)?;
            if matches!(
                op,
                Tok::Plus
                    | Tok::Minus
                    | Tok::Star
                    | Tok::Slash
                    | Tok::DSlash
                    | Tok::Percent
                    | Tok::Caret
            ) {
                self.arith_operand(&left);
                self.arith_operand(&right);
            }
            left = Ex::new(Val::Other, left.start, self.lx.prev_end);
        }
        Ok(left)
    }

    /// The rest of an expression whose first simple expression (a table
    /// constructor) was read: its casts, then binary operators.
    pub(crate) fn expr_after_simple(&mut self) -> R<()> {
        let start = self.lx.prev_end;
        self.postfix_casts()?;
        self.binary_rest(0, Ex::new(Val::Other, start, start))?;
        Ok(())
    }

    fn simple_exp(&mut self) -> R<Ex> {
        let e = self.simple_head()?;
        if self.postfix_casts()? {
            return Ok(Ex::new(Val::Other, e.start, self.lx.prev_end));
        }
        Ok(e)
    }

    /// A simple expression without its postfix casts.
    fn simple_head(&mut self) -> R<Ex> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Number | Tok::Str | Tok::Nil | Tok::True | Tok::False => {
                self.lx.advance();
                let val = match t.kind {
                    Tok::Number => Val::Num,
                    Tok::Str => Val::Str,
                    Tok::Nil => Val::Nil,
                    Tok::True => Val::True,
                    _ => Val::False,
                };
                Ok(Ex::new(val, t.start, t.end))
            }
            Tok::Dots => self.vararg_exp(t),
            Tok::LBrace => self.table_exp(t),
            Tok::Function => self.func_exp(t),
            _ => self.suffixed_exp().map(|s| s.ex),
        }
    }

    fn vararg_exp(&mut self, t: Token) -> R<Ex> {
        if !self.func()?.vararg {
            return Err(self.error_near("cannot use '...' outside a vararg function"));
        }
        self.lx.advance();
        Ok(Ex::new(Val::Multi, t.start, t.end))
    }

    fn table_exp(&mut self, t: Token) -> R<Ex> {
        let i = self.constructor()?;
        Ok(Ex::new(Val::Table(i), t.start, self.lx.prev_end))
    }

    fn func_exp(&mut self, t: Token) -> R<Ex> {
        self.lx.advance();
        let f = self.body(false, t.line, (t.start, t.end))?;
        Ok(Ex::new(Val::Func(f), t.start, self.lx.prev_end))
    }

    /// Wippy's postfix `as T`, `:: T` and `!`, erased; a `;` replaces the
    /// first byte when the next token is `(` (§3.3 rule 3). Whether there
    /// was one.
    fn postfix_casts(&mut self) -> R<bool> {
        let mut any = false;
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
                _ => return Ok(any),
            }
            any = true;
            let end = self.lx.prev_end;
            self.erase(t.start, end);
            if self.kind() == Tok::LParen {
                self.out.semis.push(t.start);
            }
        }
    }

    /// A name or a parenthesised expression (its summary: one value).
    fn primary_exp(&mut self) -> R<(ExpKind, Option<&'a str>, Ex)> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Name => {
                self.lx.advance();
                Ok((
                    ExpKind::Name,
                    Some(self.lx.text(&t)),
                    Ex::new(Val::Other, t.start, t.end),
                ))
            }
            Tok::LParen => {
                self.lx.advance();
                let inner = self.expr()?;
                self.check_match(Tok::RParen, Tok::LParen, t.line)?;
                let val = if inner.is_multi() {
                    Val::Other
                } else {
                    inner.val
                };
                Ok((ExpKind::Other, None, Ex::new(val, inner.start, inner.end)))
            }
            _ => Err(self.error_near("unexpected symbol")),
        }
    }

    /// A plain name at the head of a suffixed expression: the local it
    /// resolves to, or the [`Ref`] recorded for it as a global.
    #[inline(never)]
    fn head_name(&mut self, first: &Token, name: &'a str) -> (Option<u32>, Option<usize>) {
        if self.in_type > 0 {
            return (None, None);
        }
        if let Some(l) = scope::find_local(&self.funcs, name) {
            return (Some(l.id), None);
        }
        let n = name;
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
            if n == "error" && usage == Usage::Call {
                // A body that raises need not return (T013).
                for f in &self.funcs {
                    if let Some(ff) = self.facts.funcs.get_mut(f.facts as usize) {
                        ff.calls_error = true;
                    }
                }
            }
            (None, Some(self.add_ref(first, n, usage)))
        }
    }

    /// Records `local.name` (the token `ft`); the fact's index.
    #[inline(never)]
    fn field_fact(&mut self, local: u32, ft: &Token) -> usize {
        let i = self.facts.facts.len();
        self.facts.facts.push(Fact::Field {
            local,
            name: self.lx.text(ft),
            span: (ft.start, ft.end),
            write: false,
        });
        i
    }

    /// Call arguments; recorded as a call of `local` (from `start`).
    #[inline(never)]
    fn call_fact(&mut self, local: Option<u32>, start: usize) -> R<()> {
        let args = self.call_args()?;
        if let Some(local) = local {
            self.facts.facts.push(Fact::Call {
                local,
                args,
                span: (start, self.lx.prev_end),
            });
        }
        Ok(())
    }

    fn suffixed_exp(&mut self) -> R<Suffixed<'a>> {
        let first = self.lx.peek(0);
        let (kind, name, inner) = self.primary_exp()?;
        self.suffixes(first, kind, name, inner)
    }

    /// The suffixes (`.f`, `[k]`, `:m(…)`, calls) after a primary
    /// expression that started at token `first`.
    fn suffixes(
        &mut self,
        first: Token,
        kind: ExpKind,
        name: Option<&'a str>,
        inner: Ex,
    ) -> R<Suffixed<'a>> {
        let (local, r) = match name {
            Some(n) => self.head_name(&first, n),
            None => (None, None),
        };
        let mut s = Suffixed {
            kind,
            name,
            r,
            field: None,
            ex: inner,
        };
        let mut suffixes = 0u32;
        loop {
            match self.kind() {
                Tok::Dot => {
                    self.lx.advance();
                    let ft = self.lx.peek(0);
                    self.check_field_name()?;
                    s.field = None;
                    if let (0, Some(l)) = (suffixes, local) {
                        s.field = Some(self.field_fact(l, &ft));
                    }
                    s.kind = ExpKind::Index;
                }
                Tok::LBracket => {
                    self.lx.advance();
                    self.expr()?;
                    self.check_next(Tok::RBracket)?;
                    s.field = None;
                    s.kind = ExpKind::Index;
                }
                Tok::Colon => {
                    self.lx.advance();
                    self.check_field_name()?;
                    self.call_args()?;
                    s.field = None;
                    s.kind = ExpKind::Call;
                }
                Tok::LParen | Tok::Str | Tok::LBrace => {
                    self.call_fact(local.filter(|_| suffixes == 0), first.start)?;
                    s.field = None;
                    s.kind = ExpKind::Call;
                }
                _ => {
                    if suffixes > 0 {
                        let val = if s.kind == ExpKind::Call {
                            Val::Multi
                        } else {
                            Val::Other
                        };
                        s.ex = Ex::new(val, first.start, self.lx.prev_end);
                    }
                    return Ok(s);
                }
            }
            s.name = None;
            s.r = None;
            suffixes += 1;
        }
    }

    /// Call arguments; each one's summary.
    fn call_args(&mut self) -> R<Vec<Ex>> {
        let t = self.lx.peek(0);
        match t.kind {
            Tok::Str => {
                self.lx.advance();
                Ok(vec![Ex::new(Val::Str, t.start, t.end)])
            }
            Tok::LBrace => {
                let i = self.constructor()?;
                Ok(vec![Ex::new(Val::Table(i), t.start, self.lx.prev_end)])
            }
            Tok::LParen => {
                self.lx.advance();
                let mut args = Vec::new();
                if self.kind() != Tok::RParen {
                    args = self.explist()?;
                }
                self.check_match(Tok::RParen, Tok::LParen, t.line)?;
                Ok(args)
            }
            _ => Err(self.error_near("function arguments expected")),
        }
    }

    /// A table constructor; its index in [`Facts::tables`].
    fn constructor(&mut self) -> R<u32> {
        let open = self.check_next(Tok::LBrace)?;
        let mut entries = Vec::new();
        let mut npos = 0u32;
        while self.kind() != Tok::RBrace {
            entries.push(self.ctor_entry(&mut npos)?);
            if !self.test_next(Tok::Comma) && !self.test_next(Tok::Semi) {
                break;
            }
        }
        self.check_match(Tok::RBrace, Tok::LBrace, open.line)?;
        let id = facts::idx(self.facts.tables.len());
        if self.in_type > 0 {
            entries.clear();
        }
        self.facts.tables.push(entries);
        Ok(id)
    }

    /// One entry of a table constructor (`npos`: positional ones so far).
    fn ctor_entry(&mut self, npos: &mut u32) -> R<Entry<'a>> {
        let k = self.kind();
        if (k == Tok::Name || k.is_wippy_reserved()) && self.peek_kind(1) == Tok::Assign {
            self.named_entry()
        } else if k == Tok::LBracket {
            self.keyed_entry()
        } else {
            *npos = npos.saturating_add(1);
            let key = Key::Pos(*npos);
            self.expr().map(|val| Entry { key, val })
        }
    }

    /// `name = value`.
    fn named_entry(&mut self) -> R<Entry<'a>> {
        let n = self.lx.advance();
        self.lx.advance();
        let key = Key::Name(self.lx.text(&n));
        self.expr().map(|val| Entry { key, val })
    }

    /// `[key] = value`.
    fn keyed_entry(&mut self) -> R<Entry<'a>> {
        self.lx.advance();
        let key = Key::Expr(self.expr()?);
        self.check_next(Tok::RBracket)?;
        self.check_next(Tok::Assign)?;
        self.expr().map(|val| Entry { key, val })
    }
}
