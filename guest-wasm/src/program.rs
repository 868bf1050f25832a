//! Loading components: one `Engine` for the runtime, compilation cached on
//! disk, a version check of the `warren:process` imports, and a
//! pre-instantiated component per entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warren_core::readfile::{ReadError, read_bounded};
use warren_core::share::SharedSlots;
use warren_core::{CoreRef, Frontend, FrontendFactory, Program};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use crate::bindings::{Process, ProcessPre};
use crate::driver::WasmDriver;
use crate::state::ProcState;
use crate::wasi::Grants;

/// Default most WASM processes alive at once on pooled instances. The pool
/// reserves address space (not memory) for this many up front, and costs
/// two memory mappings per slot at start (a fiber stack and its guard page)
/// plus two per live instance (its memory's accessible part): 12,000 slots
/// stay well inside Linux's default `vm.max_map_count` of 65,530, so past
/// the pool a spawn fails with a clear error instead of an mmap failure.
pub const DEFAULT_POOL_SIZE: u32 = 12_000;

/// Default most linear memory one component may grow to: a runaway guest
/// hits this instead of the machine's memory. Entries may ask for less or
/// more (`limits.memory`), up to the engine's `max_memory`.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

/// How often the engine's epoch advances: the granularity of preemption.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// Guard region after each pooled memory slot, so that most bounds checks
/// are done by the MMU.
const POOL_GUARD: u64 = 32 << 20;

/// How the runtime's one engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are cached between runs (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Most processes alive at once on pooled instances; 0 allocates each
    /// instance on demand instead (slower spawn, no fixed ceiling).
    pub pool_size: u32,
    /// Largest linear memory any component may have; the pooled slot size.
    pub max_memory: u64,
    /// Writes `/tmp/perf-<pid>.map` naming each compiled function, so that
    /// `perf report` shows guest functions instead of bare addresses.
    pub perf_map: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            pool_size: DEFAULT_POOL_SIZE,
            max_memory: DEFAULT_MAX_MEMORY,
            perf_map: false,
        }
    }
}

/// Bytes of a pooled memory or table that stay mapped when its instance
/// ends, wiped with a memset instead of handed back to the kernel: giving
/// pages back and faulting them in again cost a TLB shootdown and fresh
/// zeroed pages per spawn, most of a spawn's time. A component's stack
/// (64 KiB, see `components/.cargo/config.toml`), data and first heap pages
/// fit in this, as do the top pages of the host stack a process's fiber
/// runs on. Where the kernel has `PAGEMAP_SCAN` (Linux 6.7), only the pages
/// the instance wrote are wiped (`pagemap_scan`): the memset of all 128 KiB
/// was 11.5 % of a spawn → run → exit, 1.8 % after
/// (`tests/hostile/wasm.rs` checks no instance sees an earlier one's bytes).
const KEEP_RESIDENT: usize = 128 << 10;
/// The same for tables (a component's tables are a few KiB).
const TABLE_KEEP_RESIDENT: usize = 16 << 10;

fn pooling(config: &EngineConfig) -> InstanceAllocationStrategy {
    let n = config.pool_size;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A core instance is only counted by the pool (nothing is reserved
        // for its slot), so there is room for every process at its cap:
        // core instances cannot run out before process slots do.
        .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        // Memory and table slots for every process at its caps too: with
        // one memory slot per process, 3,000 processes of one host, each
        // defining 4 empty memories, took every slot and no component of
        // any other host could start. Slots are address space (a memory
        // slot is `max_memory` plus its guard), mapped only when used.
        .total_memories(n.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
        .total_tables(n.saturating_mul(MAX_TABLES_PER_COMPONENT))
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .total_stacks(n)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
        .max_unused_warm_slots(n.min(1024))
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    InstanceAllocationStrategy::Pooling(pool)
}

/// Most linear memories one component may define across all its core
/// instances. A component built by `cargo` for `wasm32-wasip2` or by
/// `wit-bindgen` has one (the preview-1 adapter adds at most one more); a
/// composition of a few such components has one each. Without a cap, 12
/// processes of 990 zero-page memories each (no byte of them counted
/// against any quota) took the engine's 12,000 memory slots, and no
/// component of any other host could start. The pool holds this many
/// memory slots per process ([`DEFAULT_POOL_SIZE`]), so memories run out
/// only with process slots, which a host's `max_processes` bounds.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

/// Most tables one component may define across all its core instances.
/// A Rust component has two (its main module's function table and the
/// shim that wires its imports); a composition has two per component
/// in it. Tables are pool slots like memories (two per process), and
/// their elements count against the process's memory.
pub const MAX_TABLES_PER_COMPONENT: u32 = 8;

/// Most core instances one component may instantiate. A Rust component
/// has three (its module, the import shim and its fixup); tools that link
/// a language runtime from several modules (an interpreter, its C
/// library, the WASI adapter, native extensions) use a dozen or two. Each
/// is a slot of the engine's pool and host memory (its `VMContext`, up to
/// 1 MiB) that no quota counts: one component of 990 was accepted.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// Bytes a component file may hold. Compiling reads it whole and builds
/// several times its size; a component of gigabytes (or a symlink to
/// `/dev/zero`, refused as no regular file) would take the loader's
/// memory first. Real components, interpreters included, are tens of MiB.
pub const MAX_COMPONENT_BYTES: usize = 256 << 20;

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
    /// The file could not be read within [`MAX_COMPONENT_BYTES`], or is
    /// no regular file.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ReadError,
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
    /// Imports something outside the process interface and its grants.
    #[error("{}: imports {import}, which is not granted{hint}", path.display())]
    NotGranted {
        /// The file.
        path: PathBuf,
        /// The import.
        import: String,
        /// How to grant it, if it can be.
        hint: &'static str,
    },
    /// An entry asks for more memory than the engine gives any component.
    #[error("{}: limits.memory {asked} bytes exceeds the engine's maximum of {max} bytes", path.display())]
    Memory {
        /// The file.
        path: PathBuf,
        /// What the entry asked for.
        asked: u64,
        /// The engine's maximum.
        max: u64,
    },
    /// Defines more memories, tables or core instances than one process
    /// may have ([`MAX_MEMORIES_PER_COMPONENT`],
    /// [`MAX_TABLES_PER_COMPONENT`], [`MAX_CORE_INSTANCES_PER_COMPONENT`]),
    /// or instance state larger than a slot of the engine's pool. The
    /// message names what it has and the bound.
    #[error("{}: needs more than one process may have: {message}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it has, and the bound.
        message: String,
    },
    /// Does not export the process world.
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
    max_memory: u64,
    cache: Option<Cache>,
    /// The pool's instance slots, shared fairly by the hosts of a runtime
    /// (`None` when instances are allocated on demand).
    slots: Option<Arc<SharedSlots>>,
}

/// Epoch ticks in a host's `cpu_slice` (at least one).
pub(crate) fn slice_ticks(slice: std::time::Duration) -> u64 {
    let ticks = slice.as_nanos() / EPOCH_TICK.as_nanos().max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

impl WasmEngine {
    /// An engine set up as `options` says.
    pub fn new(options: &EngineConfig) -> Result<Arc<Self>, WasmError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        if options.pool_size > 0 {
            config.allocation_strategy(pooling(options));
            config.memory_reservation(options.max_memory);
            config.memory_guard_size(POOL_GUARD);
            config.memory_reservation_for_growth(0);
            // A copy-on-write image is one more mapping per live instance;
            // copying a component's few KiB of data segments is cheaper.
            config.memory_init_cow(false);
        }
        if options.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let cache = match &options.cache_dir {
            Some(dir) => {
                let mut cache = CacheConfig::new();
                cache.with_directory(dir);
                Some(Cache::new(cache).map_err(|e| WasmError::Engine(format!("{e:#}")))?)
            }
            None => None,
        };
        config.cache(cache.clone());
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        crate::ticker::add(&engine)
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        let mut linker = Linker::new(&engine);
        crate::link::add_wasi(&mut linker).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        Process::add_to_linker::<ProcState, wasmtime::component::HasSelf<ProcState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        Ok(Arc::new(WasmEngine {
            engine,
            linker,
            max_memory: options.max_memory,
            cache,
            slots: (options.pool_size > 0).then(|| SharedSlots::new(options.pool_size)),
        }))
    }

    /// How many compiled components came from the on-disk cache, and how
    /// many had to be compiled, since this engine started.
    pub fn cache_stats(&self) -> (usize, usize) {
        self.cache
            .as_ref()
            .map_or((0, 0), |c| (c.cache_hits(), c.cache_misses()))
    }

    /// Compiles (or loads from the cache) the component at `path` and checks
    /// it against the process world, granting it nothing beyond it.
    pub fn load(&self, path: &Path) -> Result<WasmProgram, WasmError> {
        self.load_granted(path, Grants::default())
    }

    /// Like [`load`](Self::load), granting the component `grants`.
    pub fn load_granted(&self, path: &Path, grants: Grants) -> Result<WasmProgram, WasmError> {
        if let Some(asked) = grants.memory.filter(|m| *m > self.max_memory) {
            return Err(WasmError::Memory {
                path: path.to_path_buf(),
                asked,
                max: self.max_memory,
            });
        }
        let bytes = read_bounded(path, MAX_COMPONENT_BYTES).map_err(|source| WasmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let component = Component::new(&self.engine, &bytes).map_err(|e| {
            let message = format!("{e:#}");
            if refused_by_pool(&message) {
                WasmError::TooLarge {
                    path: path.to_path_buf(),
                    message,
                }
            } else {
                WasmError::NotComponent {
                    path: path.to_path_buf(),
                    message: one_line(&message),
                }
            }
        })?;
        check_resources(path, &component)?;
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            check_import(path, name, &grants)?;
        }
        let link = |e: wasmtime::Error| WasmError::Link {
            path: path.to_path_buf(),
            message: one_line(&format!("{e:#}")),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre = ProcessPre::new(pre).map_err(link)?;
        Ok(WasmProgram {
            pre,
            grants: Arc::new(grants),
            slots: self.slots.clone(),
        })
    }
}

/// Whether wasmtime's message for a component it would not compile says
/// that the component does not fit the instance pool: its per-component
/// caps (`... exceeds the configured maximum of N in the pooling
/// allocator`) or its slot sizes (`... does not fit in pooling allocator
/// requirements`). Such a component is valid, only too large for a
/// process here. (`tests/hostile/wasm_limits.rs` checks these messages,
/// so a wasmtime upgrade that rewords them fails a test.)
/// `message` on one line: the validator prints some values over many
/// (`expected=[\n    0x0,\n ...`), which broke the `error:` line in two
/// dozen.
fn one_line(message: &str) -> String {
    if !message.contains('\n') {
        return message.to_owned();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn refused_by_pool(message: &str) -> bool {
    message.contains("pooling allocator")
}

/// Refuses a component defining more memories or tables than one process
/// may have. The pool refuses these in `Component::new` already (and
/// more core instances than [`MAX_CORE_INSTANCES_PER_COMPONENT`]); this
/// holds them when instances are allocated on demand too (`pool_size`
/// 0), where each memory would reserve its own address space. A
/// component importing core modules cannot be measured and is not
/// refused here (the process world gives it none to import).
fn check_resources(path: &Path, component: &Component) -> Result<(), WasmError> {
    let Some(needs) = component.resources_required() else {
        return Ok(());
    };
    let over = |what: &str, count: u32, max: u32| WasmError::TooLarge {
        path: path.to_path_buf(),
        message: format!("it defines {count} {what}, over the most one component may have ({max})"),
    };
    if needs.num_memories > MAX_MEMORIES_PER_COMPONENT {
        return Err(over(
            "linear memories",
            needs.num_memories,
            MAX_MEMORIES_PER_COMPONENT,
        ));
    }
    if needs.num_tables > MAX_TABLES_PER_COMPONENT {
        return Err(over("tables", needs.num_tables, MAX_TABLES_PER_COMPONENT));
    }
    Ok(())
}

/// Refuses an import outside the process interface of this version and
/// the WASI interfaces `grants` allows.
fn check_import(path: &Path, name: &str, grants: &Grants) -> Result<(), WasmError> {
    if let Some(rest) = name
        .strip_prefix(WIT_PACKAGE)
        .and_then(|r| r.strip_prefix('/'))
    {
        if rest.ends_with(&format!("@{WIT_VERSION}")) {
            return Ok(());
        }
        return Err(WasmError::Version {
            path: path.to_path_buf(),
            found: name.to_owned(),
        });
    }
    let hint = match grants.allows_wasi(name) {
        Some(true) => return Ok(()),
        Some(false) if name.starts_with("wasi:sockets/") => {
            " (grant it with `wasi: { network: true }`)"
        }
        _ => "",
    };
    Err(WasmError::NotGranted {
        path: path.to_path_buf(),
        import: name.to_owned(),
        hint,
    })
}

/// A component ready to be spawned, with what its entry grants it.
pub struct WasmProgram {
    pub(crate) pre: ProcessPre<ProcState>,
    pub(crate) grants: Arc<Grants>,
    /// Its engine's pool slots, one taken per process before it is
    /// instantiated.
    pub(crate) slots: Option<Arc<SharedSlots>>,
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

    /// Components receive every payload as MessagePack.
    fn reads_packed(&self) -> bool {
        true
    }
}

/// The WebAssembly front-end, to register with a `RuntimeBuilder`.
pub fn wasm_frontend() -> Arc<dyn FrontendFactory> {
    Arc::new(Factory)
}
