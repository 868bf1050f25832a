//! Memory of idle Lua processes and blocked coroutines: resident-set growth
//! of the whole process, what an operator sees (not a criterion timing).

use warren_benches::lua;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

fn main() {
    warren_alloc::configure();
    warren_benches::memory::child_main();
    for n in [20_000, 100_000] {
        let each = lua::idle_process_bytes(n);
        println!(
            "lua/idle_process: {each} bytes of RSS per idle process ({n} processes, {} MB in all)",
            each * n / 1_000_000
        );
    }
    let n = 20_000;
    let each = lua::coroutine_bytes(n);
    println!("lua/coroutine_spawn: {each} bytes of RSS per blocked coroutine ({n} coroutines)");
}
