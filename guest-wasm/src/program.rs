//! Loading components: one `Engine` for the runtime, compilation cached on
//! disk, a version check of the `warren:process` imports, and a
//! pre-instantiated component per entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warren_core::{CoreRef, Frontend, FrontendFactory, Program};
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine};

use crate::bindings::{Process, ProcessPre};
use crate::driver::WasmDriver;
use crate::state::ProcState;

/// The WIT package components must import.
pub const WIT_PACKAGE: &str = "warren:process";
/// The version of [`WIT_PACKAGE`] this host implements.
pub const WIT_VERSION: &str = "0.1.0";

pub(crate) const FRONTEND_NAME: &str = "wasm";

/// Why a component cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("{}: not a WebAssembly component: {message}", path.display())]
    NotComponent {
        /// The file.
        path: PathBuf,
        /// The validator's message.
        message: String,
    },
    /// Built against another version of the process interface.
    #[error("{}: imports {found}, but this host implements {WIT_PACKAGE}@{WIT_VERSION}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The import found.
        found: String,
    },
    /// Imports something not granted, or does not export the process world.
    #[error("{}: does not fit the process world: {message}", path.display())]
    Link {
        /// The file.
        path: PathBuf,
        /// The linker's message.
        message: String,
    },
}

/// The runtime's WebAssembly engine and linker.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<ProcState>,
}

impl WasmEngine {
    /// An engine caching compiled components under `cache_dir`.
    pub fn new(cache_dir: Option<&Path>) -> Result<Arc<Self>, WasmError> {
        let mut config = Config::new();
        if let Some(dir) = cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        Process::add_to_linker::<ProcState, wasmtime::component::HasSelf<ProcState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        Ok(Arc::new(WasmEngine { engine, linker }))
    }

    /// Compiles (or loads from the cache) the component at `path` and checks
    /// it against the process world.
    pub fn load(&self, path: &Path) -> Result<WasmProgram, WasmError> {
        let bytes = std::fs::read(path).map_err(|source| WasmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let component =
            Component::new(&self.engine, &bytes).map_err(|e| WasmError::NotComponent {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            if let Some(rest) = name
                .strip_prefix(WIT_PACKAGE)
                .and_then(|r| r.strip_prefix('/'))
                && !rest.ends_with(&format!("@{WIT_VERSION}"))
            {
                return Err(WasmError::Version {
                    path: path.to_path_buf(),
                    found: name.to_owned(),
                });
            }
        }
        let link = |e: wasmtime::Error| WasmError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre = ProcessPre::new(pre).map_err(link)?;
        Ok(WasmProgram { pre })
    }
}

/// A component ready to be spawned.
pub struct WasmProgram {
    pub(crate) pre: ProcessPre<ProcState>,
}

impl WasmProgram {
    /// Wraps it as a host [`Program`] with entry id `id`.
    pub fn into_program(self, id: impl Into<String>) -> Program {
        Program {
            id: id.into(),
            frontend: FRONTEND_NAME,
            code: Arc::new(self),
        }
    }
}

struct Factory;

impl FrontendFactory for Factory {
    fn name(&self) -> &'static str {
        FRONTEND_NAME
    }

    fn create(&self, core: CoreRef, index: usize) -> Box<dyn Frontend> {
        Box::new(WasmDriver::new(core, index))
    }
}

/// The WebAssembly front-end, to register with a `RuntimeBuilder`.
pub fn wasm_frontend() -> Arc<dyn FrontendFactory> {
    Arc::new(Factory)
}
