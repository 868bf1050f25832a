//! Wippy's type syntax (§1.2): type expressions, generic parameter lists,
//! return annotations and the `type`/`interface` statements. Each type
//! expression is recorded as [`Syn`] nodes (names unresolved: declarations
//! are hoisted); callers record the spans to erase.

use crate::lexer::{Tok, Token};
use crate::lit;
use crate::parser::{Parser, R};
use crate::syn::{
    Binding, DeclBody, DeclSyn, Pos, Syn, SynField, SynId, SynParam, SynValidator, TScope,
};
use crate::ty::{Lit, Ty, ValidatorArg};

/// A parameter of a function type as read by [`Parser::fparams`].
struct FParam<'a> {
    name: Option<&'a str>,
    ty: SynId,
    vararg: bool,
}

/// The position of a token.
pub(crate) fn pos(t: &Token) -> Pos {
    Pos {
        line: t.line,
        col: t.col,
    }
}

impl<'a> Parser<'a> {
    /// Adds a node to the arena.
    pub(crate) fn node(&mut self, s: Syn<'a>) -> SynId {
        let id = u32::try_from(self.syn.len()).unwrap_or(u32::MAX);
        self.syn.push(s);
        id
    }

    /// `type`.
    pub(crate) fn parse_type(&mut self) -> R<SynId> {
        self.type_ext(false)
    }

    /// `type`, recorded as a root to resolve (annotations, casts).
    pub(crate) fn parse_type_root(&mut self) -> R<SynId> {
        let id = self.parse_type()?;
        self.roots.push(id);
        Ok(id)
    }

    /// `type`; with `tuple_ok`, a leading `( … )` may also be a list of
    /// types (return positions: `: (A, B)`, `-> ()`).
    fn type_ext(&mut self, tuple_ok: bool) -> R<SynId> {
        self.enter()?;
        let first = self.utype(tuple_ok, false)?;
        let r = match self.kind() {
            Tok::Pipe | Tok::Amp => {
                // `&` binds tighter than `|`.
                let mut union = Vec::new();
                let mut inter = vec![first];
                while matches!(self.kind(), Tok::Pipe | Tok::Amp) {
                    let op = self.lx.advance().kind;
                    let next = self.utype(false, false)?;
                    if op == Tok::Pipe {
                        union.push(self.group(std::mem::take(&mut inter)));
                    }
                    inter.push(next);
                }
                union.push(self.group(inter));
                if union.len() == 1 {
                    union[0]
                } else {
                    self.node(Syn::Union(union))
                }
            }
            Tok::Extends => {
                let p = pos(&self.lx.advance());
                let b = self.utype(false, true)?;
                self.expect(Tok::Question)?;
                let x = self.parse_type()?;
                self.expect(Tok::Colon)?;
                let y = self.parse_type()?;
                self.node(Syn::Cond {
                    a: first,
                    b,
                    x,
                    y,
                    pos: p,
                })
            }
            _ => first,
        };
        self.leave();
        Ok(r)
    }

    /// One intersection group of a union.
    fn group(&mut self, mut items: Vec<SynId>) -> SynId {
        if items.len() == 1 {
            items.pop().unwrap_or(0)
        } else {
            self.node(Syn::Inter(items))
        }
    }

    /// `ptype` with its postfixes `[]`, `[K]`, `@validator`, `?`. With
    /// `before_question`, a `?` is left for a conditional type unless
    /// another `?` follows it.
    fn utype(&mut self, tuple_ok: bool, before_question: bool) -> R<SynId> {
        let mut cur = self.ptype(tuple_ok)?;
        let mut vals: Vec<SynValidator<'a>> = Vec::new();
        loop {
            let k = self.kind();
            if k != Tok::At && !vals.is_empty() {
                cur = self.node(Syn::Annotated {
                    inner: cur,
                    validators: std::mem::take(&mut vals),
                });
            }
            match k {
                Tok::LBracket => {
                    let p = pos(&self.lx.advance());
                    if self.test_next(Tok::RBracket) {
                        cur = self.node(Syn::Array {
                            elem: cur,
                            readonly: false,
                        });
                    } else {
                        let key = self.parse_type()?;
                        self.expect(Tok::RBracket)?;
                        cur = self.node(Syn::Index(cur, key, p));
                    }
                }
                Tok::Question => {
                    if before_question && self.peek_kind(1) != Tok::Question {
                        return Ok(cur);
                    }
                    self.lx.advance();
                    cur = self.node(Syn::Optional(cur));
                }
                Tok::At => {
                    let v = self.validator()?;
                    vals.push(v);
                }
                _ => return Ok(cur),
            }
        }
    }

    /// `'@' Name ['(' [explist] ')']`.
    fn validator(&mut self) -> R<SynValidator<'a>> {
        let at = pos(&self.lx.advance());
        if self.kind() != Tok::Name && !self.kind().is_wippy_reserved() {
            return Err(self.error_found("a validator name"));
        }
        let t = self.lx.advance();
        let name = self.lx.text(&t);
        let mut args = Vec::new();
        if self.test_next(Tok::LParen) {
            if self.kind() != Tok::RParen {
                self.in_type += 1;
                loop {
                    let a = self.validator_arg()?;
                    args.push(a);
                    if !self.test_next(Tok::Comma) {
                        break;
                    }
                }
                self.in_type -= 1;
            }
            self.expect(Tok::RParen)?;
        }
        Ok(SynValidator { name, at, args })
    }

    /// One validator argument: a literal number or string (possibly
    /// negated) is kept, anything else is parsed and recorded as `Other`.
    fn validator_arg(&mut self) -> R<(ValidatorArg, Pos)> {
        let t = self.lx.peek(0);
        let p = pos(&t);
        let ends = |k: Tok| matches!(k, Tok::Comma | Tok::RParen);
        if matches!(t.kind, Tok::Number | Tok::Str) && ends(self.peek_kind(1)) {
            self.lx.advance();
            let text = self.lx.text(&t);
            let v = if t.kind == Tok::Str {
                ValidatorArg::Str(String::from_utf8_lossy(&lit::string(text)).into_owned())
            } else {
                match lit::number(text) {
                    Lit::Int(i) => ValidatorArg::Int(i),
                    Lit::Float(f) => ValidatorArg::Float(f),
                    _ => ValidatorArg::Other,
                }
            };
            return Ok((v, p));
        }
        if t.kind == Tok::Minus && self.peek_kind(1) == Tok::Number && ends(self.peek_kind(2)) {
            self.lx.advance();
            let n = self.lx.advance();
            let v = match lit::number(self.lx.text(&n)) {
                Lit::Int(i) => ValidatorArg::Int(i.wrapping_neg()),
                Lit::Float(f) => ValidatorArg::Float(-f),
                _ => ValidatorArg::Other,
            };
            return Ok((v, p));
        }
        self.expr()?;
        Ok((ValidatorArg::Other, p))
    }

    fn ptype(&mut self, tuple_ok: bool) -> R<SynId> {
        self.enter()?;
        let t = self.lx.peek(0);
        let id = match t.kind {
            Tok::Nil => {
                self.lx.advance();
                self.node(Syn::Leaf(Ty::Nil))
            }
            Tok::True | Tok::False => {
                self.lx.advance();
                self.node(Syn::Lit(Lit::Bool(t.kind == Tok::True)))
            }
            Tok::Str => {
                self.lx.advance();
                let s = lit::string(self.lx.text(&t));
                self.node(Syn::Lit(Lit::Str(s)))
            }
            Tok::Number => {
                self.lx.advance();
                let n = lit::number(self.lx.text(&t));
                self.node(Syn::Lit(n))
            }
            Tok::Name => {
                self.lx.advance();
                let mut qualified = false;
                while self.test_next(Tok::Dot) {
                    if self.kind() != Tok::Name {
                        return Err(self.error_found("a type name"));
                    }
                    self.lx.advance();
                    qualified = true;
                }
                let name = self.lx.slice(t.start, self.lx.prev_end);
                let mut args = None;
                if self.kind() == Tok::Lt {
                    self.lx.advance();
                    let mut list = vec![self.parse_type()?];
                    while self.test_next(Tok::Comma) {
                        list.push(self.parse_type()?);
                    }
                    if !self.lx.eat_gt() {
                        return Err(self.error_found("'>'"));
                    }
                    args = Some(list);
                }
                let scope = self.tscope;
                self.node(Syn::Name {
                    name,
                    qualified,
                    args,
                    scope,
                    pos: pos(&t),
                })
            }
            Tok::LBrace => self.brace_type(false)?,
            Tok::Readonly => {
                self.lx.advance();
                if self.kind() != Tok::LBrace {
                    return Err(self.error_found("'{'"));
                }
                self.brace_type(true)?
            }
            Tok::Interface => {
                self.lx.advance();
                self.expect(Tok::LBrace)?;
                let fields = if self.test_next(Tok::RBrace) {
                    Vec::new()
                } else {
                    self.record_fields()?
                };
                self.node(Syn::Interface { fields })
            }
            Tok::LParen => self.paren_type(tuple_ok)?,
            Tok::Fun => {
                self.lx.advance();
                self.expect(Tok::LParen)?;
                let (ps, _, _) = self.fparams()?;
                let rets = if self.test_next(Tok::Colon) {
                    let r = self.type_ext(true)?;
                    self.rets_of(r)
                } else {
                    Vec::new()
                };
                self.func_node(ps, rets)
            }
            Tok::Typeof => self.typeof_type()?,
            Tok::Keyof => {
                self.lx.advance();
                self.expect(Tok::LParen)?;
                let inner = self.parse_type()?;
                self.expect(Tok::RParen)?;
                self.node(Syn::Keyof(inner, pos(&t)))
            }
            Tok::Asserts => {
                self.lx.advance();
                if self.kind() != Tok::Name {
                    return Err(self.error_found("a parameter name"));
                }
                self.lx.advance();
                let inner = if self.test_next(Tok::Is) {
                    Some(self.parse_type()?)
                } else {
                    None
                };
                self.node(Syn::Asserts(inner))
            }
            _ => return Err(self.error_found("a type")),
        };
        self.leave();
        Ok(id)
    }

    /// `typeof(e)`: the annotation of an annotated local, the shape of a
    /// table constructor, or unknown.
    fn typeof_type(&mut self) -> R<SynId> {
        let t = self.lx.advance();
        self.expect(Tok::LParen)?;
        self.in_type += 1;
        let k = self.kind();
        let id = if k == Tok::Name && self.peek_kind(1) == Tok::RParen {
            let n = self.lx.advance();
            let name = self.lx.text(&n);
            match self.local_annot(name) {
                Some(a) => self.node(Syn::TypeofAnnot(a)),
                None => self.node(Syn::TypeofUnknown(pos(&t))),
            }
        } else if k == Tok::LBrace {
            let shape = self.shape_constructor()?;
            if self.kind() == Tok::RParen {
                shape
            } else {
                self.expr_after_simple()?;
                self.node(Syn::TypeofUnknown(pos(&t)))
            }
        } else {
            self.expr()?;
            self.node(Syn::TypeofUnknown(pos(&t)))
        };
        self.in_type -= 1;
        self.expect(Tok::RParen)?;
        Ok(id)
    }

    /// A table constructor read for its shape (`typeof({...})`).
    fn shape_constructor(&mut self) -> R<SynId> {
        self.enter()?;
        let open = self.check_next(Tok::LBrace)?;
        let mut fields = Vec::new();
        let mut positional = Vec::new();
        loop {
            if self.kind() == Tok::RBrace {
                break;
            }
            let k = self.kind();
            if (k == Tok::Name || k.is_wippy_reserved()) && self.peek_kind(1) == Tok::Assign {
                let n = self.lx.advance();
                self.lx.advance();
                let ty = self.shape_value()?;
                fields.push(SynField {
                    name: self.lx.text(&n),
                    ty,
                    optional: false,
                });
            } else if k == Tok::LBracket {
                self.lx.advance();
                self.expr()?;
                self.check_next(Tok::RBracket)?;
                self.check_next(Tok::Assign)?;
                self.expr()?;
            } else {
                let ty = self.shape_value()?;
                positional.push(ty);
            }
            if !self.test_next(Tok::Comma) && !self.test_next(Tok::Semi) {
                break;
            }
        }
        self.check_match(Tok::RBrace, Tok::LBrace, open.line)?;
        self.leave();
        Ok(if fields.is_empty() && !positional.is_empty() {
            self.node(Syn::Array {
                elem: positional[0],
                readonly: false,
            })
        } else {
            self.node(Syn::Record {
                fields,
                readonly: false,
            })
        })
    }

    /// A field value in a shape: literals give their primitive type,
    /// nested constructors their shape, anything else any.
    fn shape_value(&mut self) -> R<SynId> {
        let t = self.lx.peek(0);
        let ends = |k: Tok| matches!(k, Tok::Comma | Tok::Semi | Tok::RBrace);
        let leaf = match t.kind {
            Tok::Str => Some(Ty::String),
            Tok::True | Tok::False => Some(Ty::Boolean),
            Tok::Number => Some(match lit::number(self.lx.text(&t)) {
                Lit::Int(_) => Ty::Integer,
                _ => Ty::Number,
            }),
            Tok::LBrace => {
                let s = self.shape_constructor()?;
                if ends(self.kind()) {
                    return Ok(s);
                }
                self.expr_after_simple()?;
                return Ok(self.node(Syn::Leaf(Ty::Any)));
            }
            _ => None,
        };
        match leaf {
            Some(ty) if ends(self.peek_kind(1)) => {
                self.lx.advance();
                Ok(self.node(Syn::Leaf(ty)))
            }
            _ => {
                self.expr()?;
                Ok(self.node(Syn::Leaf(Ty::Any)))
            }
        }
    }

    /// Whether the token `n` ahead can name a record field.
    fn field_name_at(&mut self, n: usize) -> bool {
        let k = self.peek_kind(n);
        k == Tok::Name || k.is_wippy_reserved()
    }

    /// `{}`, `{T}`, `{[K]: V}` or `{name: T, opt?: U}`.
    fn brace_type(&mut self, readonly: bool) -> R<SynId> {
        self.expect(Tok::LBrace)?;
        Ok(match self.kind() {
            Tok::RBrace => {
                self.lx.advance();
                self.node(Syn::Record {
                    fields: Vec::new(),
                    readonly,
                })
            }
            Tok::LBracket => {
                self.lx.advance();
                let key = self.parse_type()?;
                self.expect(Tok::RBracket)?;
                self.expect(Tok::Colon)?;
                let val = self.parse_type()?;
                self.test_next(Tok::Comma);
                self.expect(Tok::RBrace)?;
                self.node(Syn::Map { key, val, readonly })
            }
            _ if self.field_name_at(0)
                && (self.peek_kind(1) == Tok::Colon
                    || (self.peek_kind(1) == Tok::Question && self.peek_kind(2) == Tok::Colon)) =>
            {
                let fields = self.record_fields()?;
                self.node(Syn::Record { fields, readonly })
            }
            _ => {
                let elem = self.parse_type()?;
                self.test_next(Tok::Comma);
                self.expect(Tok::RBrace)?;
                self.node(Syn::Array { elem, readonly })
            }
        })
    }

    /// `field {',' field} [','] '}'`.
    fn record_fields(&mut self) -> R<Vec<SynField<'a>>> {
        let mut fields = Vec::new();
        loop {
            if !self.field_name_at(0) {
                return Err(self.error_found("a field name"));
            }
            let n = self.lx.advance();
            let optional = self.test_next(Tok::Question);
            self.expect(Tok::Colon)?;
            let ty = self.parse_type()?;
            fields.push(SynField {
                name: self.lx.text(&n),
                ty,
                optional,
            });
            if !self.test_next(Tok::Comma) || self.kind() == Tok::RBrace {
                break;
            }
        }
        self.expect(Tok::RBrace)?;
        Ok(fields)
    }

    /// `[fparam {',' fparam}] ')'` after `(`; returns the parameters, their
    /// count and whether the only entry is a bare type.
    fn fparams(&mut self) -> R<(Vec<FParam<'a>>, usize, bool)> {
        let mut out = Vec::new();
        let mut plain = true;
        if !self.test_next(Tok::RParen) {
            loop {
                if self.test_next(Tok::Dots) {
                    self.test_next(Tok::Colon);
                    let ty = self.parse_type()?;
                    out.push(FParam {
                        name: None,
                        ty,
                        vararg: true,
                    });
                    plain = false;
                } else if self.field_name_at(0)
                    && (self.peek_kind(1) == Tok::Colon
                        || (self.peek_kind(1) == Tok::Question && self.peek_kind(2) == Tok::Colon))
                {
                    let n = self.lx.advance();
                    let optional = self.test_next(Tok::Question);
                    self.lx.advance();
                    let mut ty = self.parse_type()?;
                    if optional {
                        ty = self.node(Syn::Optional(ty));
                    }
                    out.push(FParam {
                        name: Some(self.lx.text(&n)),
                        ty,
                        vararg: false,
                    });
                    plain = false;
                } else {
                    let ty = self.parse_type()?;
                    out.push(FParam {
                        name: None,
                        ty,
                        vararg: false,
                    });
                }
                if !self.test_next(Tok::Comma) {
                    break;
                }
            }
            self.expect(Tok::RParen)?;
        }
        let count = out.len();
        Ok((out, count, plain))
    }

    /// The return list a return type stands for: a tuple's members, or it.
    fn rets_of(&self, r: SynId) -> Vec<SynId> {
        match self.syn.get(r as usize) {
            Some(Syn::Tuple(items)) => items.clone(),
            _ => vec![r],
        }
    }

    fn func_node(&mut self, ps: Vec<FParam<'a>>, rets: Vec<SynId>) -> SynId {
        let mut params = Vec::new();
        let mut variadic = None;
        for p in ps {
            if p.vararg {
                variadic = Some(p.ty);
            } else {
                params.push(SynParam {
                    name: p.name,
                    ty: p.ty,
                });
            }
        }
        self.node(Syn::Func {
            params,
            variadic,
            rets,
        })
    }

    /// `(params) -> R`, a grouping `(T)`, or (with `tuple_ok`) a type list.
    fn paren_type(&mut self, tuple_ok: bool) -> R<SynId> {
        self.lx.advance();
        let (ps, count, plain) = self.fparams()?;
        if self.test_next(Tok::Arrow) {
            let r = self.type_ext(true)?;
            let rets = self.rets_of(r);
            return Ok(self.func_node(ps, rets));
        }
        if count == 1 && plain {
            Ok(ps[0].ty)
        } else if tuple_ok {
            let items = ps.iter().map(|p| p.ty).collect();
            Ok(self.node(Syn::Tuple(items)))
        } else {
            Err(self.error_found("'->'"))
        }
    }

    /// `'<' Name [':' type] {',' Name [':' type]} '>'`; each name is bound
    /// in the current type scope (a declaration's parameter when `decl`,
    /// else a function's, which reads as any).
    pub(crate) fn type_params(&mut self, decl: bool) -> R<Vec<(&'a str, Option<SynId>)>> {
        self.lx.advance();
        let mut out = Vec::new();
        loop {
            if self.kind() != Tok::Name {
                return Err(self.error_found("a type parameter name"));
            }
            let n = self.lx.advance();
            let name = self.lx.text(&n);
            let b = if decl {
                Binding::TParam(u32::try_from(out.len()).unwrap_or(u32::MAX))
            } else {
                Binding::FuncTParam
            };
            self.bind(name, b);
            let bound = if self.test_next(Tok::Colon) {
                Some(self.parse_type()?)
            } else {
                None
            };
            out.push((name, bound));
            if !self.test_next(Tok::Comma) {
                break;
            }
        }
        if !self.lx.eat_gt() {
            return Err(self.error_found("'>'"));
        }
        Ok(out)
    }

    /// Binds `name` in the current type scope.
    fn bind(&mut self, name: &'a str, b: Binding) {
        if let Some(s) = self.scopes.get_mut(self.tscope as usize) {
            s.binds.push((name, b));
        }
    }

    /// `':' type {',' type}` after a parameter list, erased; the declared
    /// return types (a parenthesised list stands for its members).
    pub(crate) fn return_annotation(&mut self) -> R<Vec<SynId>> {
        let start = self.lx.advance().start;
        let first = self.type_ext(true)?;
        self.roots.push(first);
        let mut rets = self.rets_of(first);
        while self.test_next(Tok::Comma) {
            rets.push(self.parse_type_root()?);
        }
        let end = self.lx.prev_end;
        self.erase(start, end);
        Ok(rets)
    }

    /// Declares a type named by token `n` in the current block (T002 for
    /// a second one of the same name); returns its index.
    fn declare(&mut self, n: &Token) -> R<u32> {
        if self.decls.len() >= crate::MAX_TYPE_DECLS {
            return Err(crate::diag::Diagnostic::new(
                crate::diag::TOO_MANY_TYPES,
                n.line,
                n.col,
                format!(
                    "too many type declarations in this chunk (limit is {})",
                    crate::MAX_TYPE_DECLS
                ),
            ));
        }
        let name = self.lx.text(n);
        let idx = u32::try_from(self.decls.len()).unwrap_or(u32::MAX);
        let dup = self.scopes.get(self.tscope as usize).is_some_and(|s| {
            s.binds
                .iter()
                .any(|(b, k)| *b == name && matches!(k, Binding::Decl(_)))
        });
        if dup {
            self.diags.push(crate::diag::Diagnostic::new(
                crate::diag::T_DUPLICATE,
                n.line,
                n.col,
                format!("duplicate type `{name}` in this block"),
            ));
        } else {
            self.bind(name, Binding::Decl(idx));
        }
        self.decls.push(DeclSyn {
            name,
            pos: pos(n),
            tparams: None,
            body: DeclBody::Type(u32::MAX),
            // A duplicate is not bound, so it has no run-time value either.
            top_level: self.tscope == 0 && !dup,
        });
        Ok(idx)
    }

    /// `type Name [tparams] = type`, erased with a `;` on its first byte.
    pub(crate) fn type_decl(&mut self) -> R<()> {
        let start = self.lx.advance().start;
        let n = self.lx.advance();
        let idx = self.declare(&n)?;
        let outer = self.tscope;
        let mut tparams = None;
        if self.kind() == Tok::Lt {
            self.push_scope();
            tparams = Some(self.type_params(true)?);
        }
        self.expect(Tok::Assign)?;
        let body = self.parse_type()?;
        self.tscope = outer;
        if let Some(d) = self.decls.get_mut(idx as usize) {
            d.tparams = tparams;
            d.body = DeclBody::Type(body);
        }
        let end = self.lx.prev_end;
        self.erase(start, end);
        self.out.semis.push(start);
        Ok(())
    }

    /// A new type scope inside the current one, made current.
    pub(crate) fn push_scope(&mut self) {
        let id = u32::try_from(self.scopes.len()).unwrap_or(u32::MAX);
        self.scopes.push(TScope {
            parent: self.tscope,
            binds: Vec::new(),
        });
        self.tscope = id;
    }

    /// `interface Name [: Base {, Base}] {member} end`, erased with a `;`.
    pub(crate) fn interface_decl(&mut self) -> R<()> {
        let open = self.lx.advance();
        if self.kind() != Tok::Name {
            return Err(self.error_found("an interface name"));
        }
        let n = self.lx.advance();
        let idx = self.declare(&n)?;
        let mut bases = Vec::new();
        if self.test_next(Tok::Colon) {
            loop {
                bases.push(self.ptype(false)?);
                if !self.test_next(Tok::Comma) {
                    break;
                }
            }
        }
        let mut fields = Vec::new();
        loop {
            match self.kind() {
                Tok::Function => {
                    self.lx.advance();
                    if !self.field_name_at(0) {
                        return Err(self.error_found("a method name"));
                    }
                    let m = self.lx.advance();
                    self.expect(Tok::LParen)?;
                    let (params, variadic) = self.method_params()?;
                    let mut rets = Vec::new();
                    if self.kind() == Tok::Colon {
                        // Not erased separately: the whole statement is.
                        self.lx.advance();
                        let r = self.type_ext(true)?;
                        rets = self.rets_of(r);
                        while self.test_next(Tok::Comma) {
                            rets.push(self.parse_type()?);
                        }
                    }
                    let ty = self.node(Syn::Func {
                        params,
                        variadic,
                        rets,
                    });
                    fields.push(SynField {
                        name: self.lx.text(&m),
                        ty,
                        optional: false,
                    });
                }
                _ if self.field_name_at(0)
                    && matches!(self.peek_kind(1), Tok::Colon | Tok::Question) =>
                {
                    let f = self.lx.advance();
                    let optional = self.test_next(Tok::Question);
                    self.expect(Tok::Colon)?;
                    let ty = self.parse_type()?;
                    fields.push(SynField {
                        name: self.lx.text(&f),
                        ty,
                        optional,
                    });
                    self.test_next(Tok::Comma);
                }
                Tok::End => break,
                _ => return Err(self.error_found("'function' or 'end' in interface")),
            }
        }
        self.lx.advance();
        if let Some(d) = self.decls.get_mut(idx as usize) {
            d.body = DeclBody::Interface { bases, fields };
        }
        let end = self.lx.prev_end;
        self.erase(open.start, end);
        self.out.semis.push(open.start);
        Ok(())
    }

    /// `[Name [':' type] {',' Name [':' type]}] ')'` of an interface method:
    /// the parameters and the vararg's type.
    fn method_params(&mut self) -> R<(Vec<SynParam<'a>>, Option<SynId>)> {
        let mut params = Vec::new();
        let mut variadic = None;
        if self.test_next(Tok::RParen) {
            return Ok((params, variadic));
        }
        loop {
            let dots = self.test_next(Tok::Dots);
            let mut name = None;
            if !dots {
                if self.kind() != Tok::Name {
                    return Err(self.error_found("a parameter name"));
                }
                let n = self.lx.advance();
                name = Some(self.lx.text(&n));
            }
            let ty = if self.test_next(Tok::Colon) {
                self.parse_type()?
            } else {
                self.node(Syn::Leaf(Ty::Any))
            };
            if dots {
                variadic = Some(ty);
            } else {
                params.push(SynParam { name, ty });
            }
            if !self.test_next(Tok::Comma) {
                break;
            }
        }
        self.expect(Tok::RParen)?;
        Ok((params, variadic))
    }
}
