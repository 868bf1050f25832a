//! A key-value store: "put" {key, value} and "get" {key} (answered on topic
//! "value" with the value or nil); returns the number of keys on "stop".

use std::collections::BTreeMap;

use serde::Deserialize;
use warren_sdk::{Args, Error, Payload, Process};

#[derive(Deserialize)]
struct Request {
    key: String,
    value: Option<String>,
}

struct Kv;

impl Process for Kv {
    fn run(_args: Args) -> Result<Payload, Error> {
        let mut store: BTreeMap<String, String> = BTreeMap::new();
        while let Some(msg) = warren_sdk::receive(None)? {
            match msg.topic.as_str() {
                "put" => {
                    let req: Request = msg.data()?;
                    store.insert(req.key, req.value.unwrap_or_default());
                }
                "get" => {
                    let req: Request = msg.data()?;
                    warren_sdk::send(&msg.from, "value", &store.get(&req.key))?;
                }
                "stop" => break,
                _ => {}
            }
        }
        warren_sdk::payload(&store.len())
    }
}

warren_sdk::export!(Kv);
