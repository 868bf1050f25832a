//! Lua entries: their source, the function to run and the modules allowed,
//! plus the factory that puts a Lua VM on every worker.

use std::sync::{Arc, OnceLock};

use mlua::{Function, Lua, chunk::ChunkMode};
use warren_core::{CoreRef, Frontend, FrontendFactory, Program};
use warren_lua_dialect::TypeTable;

use crate::host;

/// Modules a Lua entry may list in `modules:`.
pub const MODULES: [&str; 17] = [
    "json",
    "time",
    "services",
    "io",
    "registry",
    "events",
    "ctx",
    "logger",
    "base64",
    "hash",
    "uuid",
    "crypto",
    "sql",
    "http_client",
    "fs",
    "env",
    "funcs",
];

/// A Lua entry ready to be spawned.
#[derive(Clone, Debug)]
pub struct LuaProgram {
    /// The chunk name used in error messages (normally the file path).
    pub chunk_name: String,
    /// The script's source text.
    pub source: Arc<str>,
    /// The function of the returned table to run (`main` by default).
    pub method: String,
    /// The modules `require` may load.
    pub modules: Vec<String>,
    /// Libraries `require(alias)` loads (the entry's `imports:`).
    pub imports: Vec<(String, Arc<LuaLibrary>)>,
    /// The entry's own grants (its host's are added at each check).
    pub grants: Arc<warren_core::grants::Grants>,
    /// The text mlua compiles, made once for every worker's VM.
    prepared: TextCell,
}

/// A `library.lua` entry: code other entries import. It runs inside the
/// importing process, at most once per process, with its own `modules`
/// and `imports`.
#[derive(Clone, Debug)]
pub struct LuaLibrary {
    /// Its entry id.
    pub id: String,
    /// The chunk name used in error messages (normally the file path).
    pub chunk_name: String,
    /// Its source text.
    pub source: Arc<str>,
    /// The modules its `require` may load.
    pub modules: Vec<String>,
    /// The libraries its `require(alias)` loads.
    pub imports: Vec<(String, Arc<LuaLibrary>)>,
    /// The text mlua compiles, made on the first import for every
    /// worker's VM.
    prepared: TextCell,
}

impl LuaProgram {
    /// A program from source, running `main` with no modules allowed.
    pub fn new(chunk_name: impl Into<String>, source: impl Into<Arc<str>>) -> Self {
        LuaProgram {
            chunk_name: chunk_name.into(),
            source: source.into(),
            method: "main".into(),
            modules: Vec::new(),
            imports: Vec::new(),
            grants: Arc::default(),
            prepared: TextCell::default(),
        }
    }

    /// Sets the allowed modules.
    pub fn with_modules(mut self, modules: &[&str]) -> Self {
        self.modules = modules.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    /// Wraps it as a host [`Program`] with entry id `id`, its chunk text
    /// made now (translated once here, not in every worker's VM on its
    /// first spawn there; a source the dialect refuses keeps its error for
    /// the spawn, as before).
    pub fn into_program(self, id: impl Into<String>) -> Program {
        self.prepared.get(&self.chunk_name, &self.source);
        Program {
            id: id.into(),
            frontend: FRONTEND_NAME,
            code: Arc::new(self),
        }
    }

    /// Compiles the program in `lua` (text only; binary chunks are refused).
    pub(crate) fn compile(&self, lua: &Lua) -> mlua::Result<Compiled> {
        self.prepared.compile(lua, &self.chunk_name, &self.source)
    }
}

/// A chunk's text as mlua compiles it ([`chunk_text`]): the dialect's
/// translation depends on the source alone, so one made for a program or
/// library serves every worker's VM. It holds while the owner's source is
/// still the `Arc` it was made from and its chunk name the same.
#[derive(Debug)]
struct Prepared {
    source: Arc<str>,
    chunk_name: String,
    text: ChunkText,
}

/// [`chunk_text`]'s answer.
type ChunkText = Result<(String, Option<Arc<TypeTable>>), String>;

impl Prepared {
    fn new(chunk_name: &str, source: &Arc<str>) -> Self {
        Prepared {
            source: source.clone(),
            chunk_name: chunk_name.to_owned(),
            text: chunk_text(chunk_name, source),
        }
    }

    /// Whether it was made from `source` named `chunk_name`.
    fn made_from(&self, chunk_name: &str, source: &Arc<str>) -> bool {
        Arc::ptr_eq(&self.source, source) && self.chunk_name == chunk_name
    }
}

impl LuaLibrary {
    /// A library `id` from `source`, named `chunk_name` in errors.
    pub fn new(
        id: impl Into<String>,
        chunk_name: impl Into<String>,
        source: impl Into<Arc<str>>,
        modules: Vec<String>,
        imports: Vec<(String, Arc<LuaLibrary>)>,
    ) -> Self {
        LuaLibrary {
            id: id.into(),
            chunk_name: chunk_name.into(),
            source: source.into(),
            modules,
            imports,
            prepared: TextCell::default(),
        }
    }

    /// Compiles the library as an entry's source is compiled.
    pub(crate) fn compile(&self, lua: &Lua) -> mlua::Result<Compiled> {
        self.prepared.compile(lua, &self.chunk_name, &self.source)
    }
}

/// Where a program or library keeps its [`Prepared`] text.
#[derive(Clone, Debug, Default)]
struct TextCell(OnceLock<Arc<Prepared>>);

impl TextCell {
    /// The text made for `source` named `chunk_name`, made on first use.
    fn get(&self, chunk_name: &str, source: &Arc<str>) -> &Prepared {
        self.0
            .get_or_init(|| Arc::new(Prepared::new(chunk_name, source)))
    }

    /// Compiles `source` named `chunk_name` in `lua` from the kept text, or
    /// from one made again when the owner's fields changed since.
    fn compile(&self, lua: &Lua, chunk_name: &str, source: &Arc<str>) -> mlua::Result<Compiled> {
        let prepared = self.get(chunk_name, source);
        if prepared.made_from(chunk_name, source) {
            compile_text(lua, chunk_name, &prepared.text)
        } else {
            compile_text(lua, chunk_name, &chunk_text(chunk_name, source))
        }
    }
}

/// A compiled chunk and, when it reads types as values, its types (the
/// chunk then takes `__warren_types` as its second argument).
pub(crate) struct Compiled {
    pub chunk: Function,
    pub types: Option<Arc<TypeTable>>,
}

/// The text mlua compiles for `source`: Wippy's typed dialect translated
/// to plain Lua 5.4 with the same lines (`warren-lua-dialect`), after a
/// prefix that binds the process's environment to `_ENV` on the first
/// line. A syntax error reads `file:line:column: message [P0001]`.
pub(crate) fn chunk_text(
    chunk_name: &str,
    source: &str,
) -> Result<(String, Option<Arc<TypeTable>>), String> {
    // A first line starting with `#` (a shebang) is skipped, as Lua skips
    // it in a file: blanked, so lines stay.
    let source = match source.strip_prefix('#') {
        Some(_) => {
            let end = source.find('\n').unwrap_or(source.len());
            std::borrow::Cow::Owned(" ".repeat(end) + &source[end..])
        }
        None => std::borrow::Cow::Borrowed(source),
    };
    let translation =
        warren_lua_dialect::translate(&source).map_err(|d| format!("{chunk_name}:{d}"))?;
    let (prefix, types) = if translation.needs_types {
        (
            "local _ENV, __warren_types = ...; ",
            Some(translation.types),
        )
    } else {
        ("local _ENV = ...; ", None)
    };
    Ok((prefixed(prefix, &translation.lua), types))
}

/// `prefix` then `text`, in one allocation (`format!`'s machinery was
/// about a thousand instructions of each cold spawn's compile).
fn prefixed(prefix: &str, text: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + text.len());
    out.push_str(prefix);
    out.push_str(text);
    out
}

/// A chunk's text and its name, for mlua: a chunk loaded without a name
/// had mlua format a default one (`@file:line` of the call), then
/// replaced by `set_name`'s.
struct Named<'a> {
    /// The name Lua gives it (`@` and the file).
    name: String,
    text: &'a str,
}

impl mlua::chunk::AsChunk for Named<'_> {
    fn name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn mode(&self) -> Option<ChunkMode> {
        Some(ChunkMode::Text)
    }

    fn source<'b>(&self) -> std::io::Result<std::borrow::Cow<'b, [u8]>>
    where
        Self: 'b,
    {
        Ok(std::borrow::Cow::Borrowed(self.text.as_bytes()))
    }
}

/// Compiles chunk text `text` ([`chunk_text`]'s) as a chunk named after
/// its file (text only).
fn compile_text(lua: &Lua, chunk_name: &str, text: &ChunkText) -> mlua::Result<Compiled> {
    let (text, types) = text.as_ref().map_err(|message| mlua::Error::SyntaxError {
        message: message.clone(),
        incomplete_input: false,
    })?;
    let chunk = lua
        .load(Named {
            name: prefixed("@", chunk_name),
            text,
        })
        .into_function()?;
    Ok(Compiled {
        chunk,
        types: types.clone(),
    })
}

/// The type diagnostics (T codes) of `program`'s source, one line each:
/// `file:line:column: severity[code]: message`. They never refuse it; a
/// source that does not parse has none (its P error is `check_source`'s).
pub fn type_diagnostics(program: &LuaProgram) -> Vec<String> {
    type_check(program)
        .iter()
        .map(|d| {
            format!(
                "{}:{}:{}: {}[{}]: {}",
                program.chunk_name, d.line, d.column, d.severity, d.code, d.message
            )
        })
        .collect()
}

/// The type diagnostics of `program`'s source, as the dialect reports
/// them (positions in the original source).
pub fn type_check(program: &LuaProgram) -> Vec<warren_lua_dialect::Diagnostic> {
    warren_lua_dialect::translate(&program.source)
        .map(|t| t.diagnostics)
        .unwrap_or_default()
}

/// Compiles `program` in a scratch VM, for `warren check`; the error is
/// Lua's message with file and line.
pub fn check_source(program: &LuaProgram) -> Result<(), String> {
    let lua = Lua::new();
    program.compile(&lua).map(|_| ()).map_err(|e| match e {
        mlua::Error::SyntaxError { message, .. } => message,
        other => other.to_string(),
    })
}

pub(crate) const FRONTEND_NAME: &str = "lua";

struct Factory;

impl FrontendFactory for Factory {
    fn name(&self) -> &'static str {
        FRONTEND_NAME
    }

    fn create(&self, core: CoreRef, index: usize) -> Box<dyn Frontend> {
        match host::LuaVm::new(core.clone(), index) {
            Ok(vm) => Box::new(vm),
            Err(err) => {
                tracing::error!("cannot start the Lua VM: {err}");
                Box::new(host::Broken {
                    core,
                    index,
                    error: err.to_string(),
                })
            }
        }
    }

    /// A process's inbox, listen channels and timers are channels in its
    /// worker's VM (`machine/`): a message between processes of one VM
    /// never leaves it, so the VM routes every message itself.
    fn keeps_mailboxes(&self) -> bool {
        true
    }

    fn grants(&self, program: &Program) -> Option<Arc<warren_core::grants::Grants>> {
        program
            .code
            .downcast_ref::<LuaProgram>()
            .map(|l| l.grants.clone())
    }
}

/// The Lua front-end, to register with a `RuntimeBuilder`.
pub fn lua_frontend() -> Arc<dyn FrontendFactory> {
    Arc::new(Factory)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `chunk` returns when called with an empty `_ENV`.
    fn run(compiled: &Compiled, lua: &Lua) -> i64 {
        let env = lua.create_table().expect("table");
        compiled.chunk.call(env).expect("runs")
    }

    #[test]
    fn into_program_makes_the_text_every_vm_compiles() {
        let program = LuaProgram::new("a.lua", "local x: integer = 41 return x + 1");
        let p = program.into_program("a");
        let code = p.code.downcast_ref::<LuaProgram>().expect("lua");
        let made = code.prepared.0.get().expect("made by into_program");
        assert!(made.made_from("a.lua", &code.source));
        for _ in 0..2 {
            let lua = Lua::new();
            assert_eq!(run(&code.compile(&lua).expect("compiles"), &lua), 42);
        }
    }

    #[test]
    fn a_compile_uses_the_kept_text() {
        let program = LuaProgram::new("a.lua", "return 1");
        let kept = Prepared {
            source: program.source.clone(),
            chunk_name: "a.lua".into(),
            text: Ok(("local _ENV = ...; return 7".into(), None)),
        };
        program.prepared.0.set(Arc::new(kept)).expect("empty");
        let lua = Lua::new();
        assert_eq!(run(&program.compile(&lua).expect("compiles"), &lua), 7);
    }

    #[test]
    fn a_library_keeps_the_text_its_first_compile_made() {
        let lib = LuaLibrary::new("l", "l.lua", "return 1", Vec::new(), Vec::new());
        assert!(lib.prepared.0.get().is_none());
        let lua = Lua::new();
        assert_eq!(run(&lib.compile(&lua).expect("compiles"), &lua), 1);
        let made = lib.prepared.0.get().expect("made by the compile");
        assert!(made.made_from("l.lua", &lib.source));
        // A second VM compiles the kept text, not the source again.
        let kept = LuaLibrary::new("l", "l.lua", "return 1", Vec::new(), Vec::new());
        let text = Ok(("local _ENV = ...; return 3".into(), None));
        let prepared = Prepared {
            source: kept.source.clone(),
            chunk_name: "l.lua".into(),
            text,
        };
        kept.prepared.0.set(Arc::new(prepared)).expect("empty");
        let lua = Lua::new();
        assert_eq!(run(&kept.compile(&lua).expect("compiles"), &lua), 3);
    }

    #[test]
    fn a_changed_source_is_compiled_not_the_kept_text() {
        let mut program = LuaProgram::new("a.lua", "return 1");
        let lua = Lua::new();
        assert_eq!(run(&program.compile(&lua).expect("compiles"), &lua), 1);
        program.source = "return 2".into();
        assert_eq!(run(&program.compile(&lua).expect("compiles"), &lua), 2);
        program.chunk_name = "b.lua".into();
        program.source = "return (".into();
        let Err(mlua::Error::SyntaxError { message, .. }) = program.compile(&lua) else {
            panic!("a syntax error expected");
        };
        assert!(message.starts_with("b.lua:1:"), "{message}");
    }

    #[test]
    fn a_refused_source_keeps_its_error_for_each_compile() {
        let program = LuaProgram::new("bad.lua", "local x: = 1").into_program("bad");
        let code = program.code.downcast_ref::<LuaProgram>().expect("lua");
        for _ in 0..2 {
            let Err(mlua::Error::SyntaxError { message, .. }) = code.compile(&Lua::new()) else {
                panic!("a syntax error expected");
            };
            assert!(message.starts_with("bad.lua:1:"), "{message}");
        }
    }
}
