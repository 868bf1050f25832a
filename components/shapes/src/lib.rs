//! Typed data across the language boundary, for the tests. Spawned with a
//! pid, it sends that process a `Report` (a struct with nested structs,
//! options, a unit enum and a vector), then answers each "decode" message:
//! it decodes the payload as a `Vec<i64>`, a map and a struct whose fields
//! all have defaults, and replies with what each decode gave.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use warren_sdk::{Args, Error, Payload, Process};

#[derive(Serialize)]
enum Color {
    Red,
}

#[derive(Serialize)]
struct Inner {
    flag: bool,
}

#[derive(Serialize)]
struct Report {
    name: String,
    count: u32,
    tags: Vec<String>,
    inner: Inner,
    missing: Option<i32>,
    present: Option<i32>,
    color: Color,
}

#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    items: Vec<i64>,
    #[serde(default)]
    name: String,
}

/// How decoding `bytes` as `T` went, as text.
fn attempt<T: serde::de::DeserializeOwned>(bytes: &[u8], show: impl Fn(T) -> String) -> String {
    match warren_sdk::decode::<T>(bytes) {
        Ok(v) => show(v),
        Err(e) => format!("error: {}", e.message),
    }
}

struct Shapes;

impl Process for Shapes {
    fn run(args: Args) -> Result<Payload, Error> {
        let to: String = args.get(0)?;
        let report = Report {
            name: "widget".into(),
            count: 3,
            tags: vec!["a".into(), "b".into()],
            inner: Inner { flag: true },
            missing: None,
            present: Some(7),
            color: Color::Red,
        };
        warren_sdk::send(&to, "report", &report)?;
        while let Some(msg) = warren_sdk::receive(None)? {
            if msg.topic == "stop" {
                break;
            }
            let bytes = msg.payloads.first().cloned().unwrap_or_default();
            let vec = attempt::<Vec<i64>>(&bytes, |v| format!("vec of {}", v.len()));
            let map = attempt::<BTreeMap<String, i64>>(&bytes, |m| format!("map of {}", m.len()));
            let st = attempt::<Settings>(&bytes, |s| {
                format!("settings {} {:?}", s.items.len(), s.name)
            });
            warren_sdk::send(&msg.from, "decoded", &[vec, map, st])?;
        }
        warren_sdk::payload("done")
    }
}

warren_sdk::export!(Shapes);
