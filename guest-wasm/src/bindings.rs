//! Host bindings generated from `wit/process.wit`. Functions that create a
//! channel handle are trappable: a guest that fills its handle table traps
//! instead of getting a dangling handle.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "process",
    imports: {
        "warren:process/channels.[constructor]channel": async | trappable,
        "warren:process/host.inbox": async | trappable,
        "warren:process/host.events": async | trappable,
        "warren:process/host.after": async | trappable,
        default: async,
    },
    exports: { default: async },
    with: {
        "warren:process/channels.channel": crate::channel::ChannelRes,
    },
});
