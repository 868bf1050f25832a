//! The locals in scope (with their type annotations, for `typeof`, and for
//! telling a local from a global when a name may be a run-time type), and
//! Lua 5.4's compile-time scope rules that a grammar alone does not catch:
//! `goto`/label resolution, `break` outside a loop, `...` outside a vararg
//! function, assignment to `<const>`/`<close>` locals, and the limit of
//! 200 locals per function.
//!
//! They are checked here so that a chunk the front-end accepts also
//! compiles under Lua (messages as Lua's `lparser.c` words them). The rules
//! mirror `lparser.c` (5.4): labels are visible in nested blocks of the same
//! function; a forward `goto` may not jump into the scope of a local unless
//! the label is the last statement of its block.

use crate::syn::SynId;

/// Lua's `MAXVARS`.
pub(crate) const MAX_LOCALS: usize = 200;

struct Block {
    is_loop: bool,
    nactvar: usize,
    first_label: usize,
    first_goto: usize,
}

struct Label<'a> {
    name: &'a str,
    line: u32,
}

struct Goto<'a> {
    name: &'a str,
    line: u32,
    col: u32,
    nactvar: usize,
}

/// A local in scope: name, whether it is read-only (`<const>`/`<close>`),
/// and its type annotation (for `typeof`).
pub(crate) struct Local<'a> {
    name: &'a str,
    readonly: bool,
    pub annot: Option<SynId>,
    /// Its index in [`crate::facts::Facts::locals`].
    pub id: u32,
}

/// Labels and pending gotos one chunk may compare while it resolves them
/// (each `goto`, label and loop end scans what is visible or pending):
/// 150,000 `break`s in one loop, or a label per `goto`, made those scans
/// quadratic, 22 s in one call the hook never reaches. Lua's own parser
/// stops at 32,767 of each; real code compares a few per statement.
pub const MAX_LABEL_WORK: u64 = 16_000_000;

/// What a chunk's label and goto scans have compared so far, shared by
/// its functions (see [`MAX_LABEL_WORK`]).
pub(crate) type LabelWork = std::rc::Rc<std::cell::Cell<u64>>;

/// One function being parsed.
pub(crate) struct Func<'a> {
    pub vararg: bool,
    pub line: u32,
    /// Its index in [`crate::facts::Facts::funcs`] (the main chunk: none).
    pub facts: u32,
    blocks: Vec<Block>,
    labels: Vec<Label<'a>>,
    gotos: Vec<Goto<'a>>,
    locals: Vec<Local<'a>>,
    work: LabelWork,
}

/// A scope error: message and the line/column to report it at (`None`: at
/// the current token).
pub(crate) struct ScopeError {
    pub message: String,
    pub at: Option<(u32, u32)>,
}

fn err(message: String, at: Option<(u32, u32)>) -> ScopeError {
    ScopeError { message, at }
}

impl<'a> Func<'a> {
    pub(crate) fn new(vararg: bool, line: u32, work: LabelWork) -> Self {
        Self {
            vararg,
            line,
            facts: crate::facts::NONE,
            blocks: Vec::new(),
            labels: Vec::new(),
            gotos: Vec::new(),
            locals: Vec::new(),
            work,
        }
    }

    /// Charges a scan of `n` labels or gotos to the chunk's budget.
    fn charge(&self, n: usize, line: u32, col: u32) -> Result<(), ScopeError> {
        let done = self.work.get().saturating_add(n as u64);
        self.work.set(done);
        if done > MAX_LABEL_WORK {
            return Err(err(
                format!(
                    "too many labels and gotos to resolve (over {MAX_LABEL_WORK} comparisons in this chunk)"
                ),
                Some((line, col)),
            ));
        }
        Ok(())
    }

    pub(crate) fn enter_block(&mut self, is_loop: bool) {
        self.blocks.push(Block {
            is_loop,
            nactvar: self.locals.len(),
            first_label: self.labels.len(),
            first_goto: self.gotos.len(),
        });
    }

    /// Closes the innermost block; at the function's outermost block an
    /// unresolved `goto` or `break` is an error.
    pub(crate) fn leave_block(&mut self) -> Result<(), ScopeError> {
        let Some(bl) = self.blocks.last() else {
            return Ok(());
        };
        let (is_loop, nactvar, first_label, first_goto) =
            (bl.is_loop, bl.nactvar, bl.first_label, bl.first_goto);
        self.locals.truncate(nactvar);
        if is_loop {
            self.create_label("break", 0, false)?;
        }
        self.labels.truncate(first_label);
        self.blocks.pop();
        if self.blocks.is_empty() {
            if let Some(g) = self.gotos.get(first_goto) {
                let message = if g.name == "break" {
                    format!("break outside a loop at line {}", g.line)
                } else {
                    format!(
                        "no visible label '{}' for <goto> at line {}",
                        g.name, g.line
                    )
                };
                return Err(err(message, Some((g.line, g.col))));
            }
        } else {
            for g in &mut self.gotos[first_goto..] {
                g.nactvar = nactvar;
            }
        }
        Ok(())
    }

    /// Adds a local, active from now on.
    pub(crate) fn add_local(
        &mut self,
        name: &'a str,
        readonly: bool,
        annot: Option<SynId>,
        id: u32,
    ) {
        self.locals.push(Local {
            name,
            readonly,
            annot,
            id,
        });
    }

    /// Whether `n` more locals stay within [`MAX_LOCALS`].
    pub(crate) fn room_for(&self, n: usize) -> bool {
        self.locals.len() + n <= MAX_LOCALS
    }

    /// `goto name` (or `break`, as the goto named "break").
    pub(crate) fn goto(&mut self, name: &'a str, line: u32, col: u32) -> Result<(), ScopeError> {
        let visible = name != "break" && {
            self.charge(self.labels.len(), line, col)?;
            self.labels.iter().any(|l| l.name == name)
        };
        if !visible {
            self.gotos.push(Goto {
                name,
                line,
                col,
                nactvar: self.locals.len(),
            });
        }
        Ok(())
    }

    /// `::name::`; `last`: it is the last statement of its block.
    pub(crate) fn label(
        &mut self,
        name: &'a str,
        line: u32,
        col: u32,
        last: bool,
    ) -> Result<(), ScopeError> {
        self.charge(self.labels.len(), line, col)?;
        if let Some(l) = self.labels.iter().find(|l| l.name == name) {
            return Err(err(
                format!("label '{name}' already defined on line {}", l.line),
                Some((line, col)),
            ));
        }
        self.create_label(name, line, last)
    }

    fn create_label(&mut self, name: &'a str, line: u32, last: bool) -> Result<(), ScopeError> {
        let Some(bl) = self.blocks.last() else {
            return Ok(());
        };
        let nactvar = if last { bl.nactvar } else { self.locals.len() };
        let first_goto = bl.first_goto;
        self.labels.push(Label { name, line });
        let pending = self.gotos.get(first_goto..).unwrap_or_default();
        self.charge(pending.len(), line, 0)?;
        let into = pending
            .iter()
            .find(|g| g.name == name && g.nactvar < nactvar);
        if let Some(g) = into {
            let local = self.locals.get(g.nactvar).map_or("?", |l| l.name);
            return Err(err(
                format!(
                    "<goto {}> at line {} jumps into the scope of local '{local}'",
                    g.name, g.line
                ),
                Some((g.line, g.col)),
            ));
        }
        // Resolved: off the pending list, in one pass (the others keep
        // their order).
        let mut i = 0;
        self.gotos.retain(|g| {
            let keep = i < first_goto || g.name != name;
            i += 1;
            keep
        });
        Ok(())
    }
}

/// Whether `name` resolves to a read-only local of the innermost function
/// or, as an upvalue, of an enclosing one.
pub(crate) fn is_readonly(funcs: &[Func<'_>], name: &str) -> bool {
    for f in funcs.iter().rev() {
        if let Some(l) = f.locals.iter().rev().find(|l| l.name == name) {
            return l.readonly;
        }
    }
    false
}

/// The local, upvalue or parameter `name` resolves to here, if any.
pub(crate) fn find_local<'f, 'a>(funcs: &'f [Func<'a>], name: &str) -> Option<&'f Local<'a>> {
    funcs
        .iter()
        .rev()
        .find_map(|f| f.locals.iter().rev().find(|l| l.name == name))
}
