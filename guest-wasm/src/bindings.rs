//! Host bindings generated from `wit/process.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "process",
    imports: { default: async },
    exports: { default: async },
});
