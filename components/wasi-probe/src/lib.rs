//! Reports what WASI lets it see, for the host tests to check grants: the
//! environment, reads and writes under `/data` and `/out`, and a line on
//! stdout and stderr each.

use warren_sdk::{Args, Error, Payload, Process};

struct WasiProbe;

fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

impl Process for WasiProbe {
    fn run(_args: Args) -> Result<Payload, Error> {
        let mut seen = Vec::new();
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        seen.push(format!("env:{}", env.join(",")));
        let read = std::fs::read_to_string("/data/in.txt");
        seen.push(format!("read:{}", read.as_deref().unwrap_or("-").trim()));
        seen.push(format!(
            "write-ro:{}",
            outcome(std::fs::write("/data/new.txt", "x"))
        ));
        seen.push(format!(
            "write-rw:{}",
            outcome(std::fs::write("/out/new.txt", "written by a component"))
        ));
        seen.push(format!(
            "escape:{}",
            outcome(std::fs::read_to_string("/data/../../etc/passwd"))
        ));
        println!("hello from stdout");
        eprintln!("hello from stderr");
        print!("a partial line");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        warren_sdk::payload(&seen)
    }
}

warren_sdk::export!(WasiProbe);
