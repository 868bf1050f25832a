//! A component built against `warren:process@0.2.0`.

wit_bindgen::generate!({ path: "wit", world: "process" });

struct Wrong;

impl Guest for Wrong {
    fn run(_args: Vec<Vec<u8>>) -> Result<Vec<u8>, warren::process::types::Error> {
        Ok(warren::process::host::self_pid().into_bytes())
    }
}

export!(Wrong);
