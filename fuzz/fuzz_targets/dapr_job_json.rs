//! Feeds the Dapr HTTP Jobs body parser (`rookery_runtime::api::dapr::jobs::input_from_http`,
//! what `POST /v1.0-alpha1/jobs/{name}` reads) and the JSON ↔ `google.protobuf.Value`
//! conversions of `rookery_runtime::dapr_wire`. The first line of the input is the job name
//! as routed, the rest the body; the whole input is also decoded as a protobuf `Value`.
//!
//! Checks: nothing panics; a body that parses gives a `JobInput` that `JobSpec::parse`
//! takes without panicking; any bytes decode (or fail to) as a `Value` without panicking,
//! and what decodes re-encodes to the same JSON; any JSON document converts to a `Value`
//! and back, and after that first conversion (numbers become doubles) it is a fixed point,
//! with every non-number (structure, keys, strings, booleans, nulls) kept as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_core::jobs::JobSpec;
use rookery_runtime::api::dapr::jobs::input_from_http;
use rookery_runtime::dapr_wire::{json_to_protobuf_value, protobuf_value_to_json};
use serde_json::Value;

const NOW_MS: u64 = 1_767_225_600_000;

/// The same JSON, numbers aside.
fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Null) if a.is_number() => {
            // A number may become null only if it is not finite (never from serde_json).
            b.is_number() || b.is_null()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_shape(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes as a protobuf Value.
    if let Ok(json) = protobuf_value_to_json(data) {
        let again = protobuf_value_to_json(&json_to_protobuf_value(&json))
            .expect("an encoded Value decodes");
        assert_eq!(again, json);
    }

    // Any JSON document through a Value and back.
    if let Ok(json) = serde_json::from_slice::<Value>(data) {
        let once = protobuf_value_to_json(&json_to_protobuf_value(&json))
            .expect("an encoded Value decodes");
        assert!(same_shape(&json, &once), "{json} became {once}");
        let twice = protobuf_value_to_json(&json_to_protobuf_value(&once))
            .expect("an encoded Value decodes");
        assert_eq!(once, twice);
    }

    // The HTTP body parser: first line the routed name, the rest the body.
    let (name, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"job"[..], data),
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if let Ok(input) = input_from_http(name, body) {
        let _ = JobSpec::parse(input, NOW_MS);
    }
});
