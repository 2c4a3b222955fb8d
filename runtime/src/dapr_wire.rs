//! Wire facts of Dapr's protocols that both the Dapr API (`api::dapr`) and the HTTP app
//! channel (`channels::app_http`) speak: the header names, and actor data in Dapr's JSON forms
//! — bytes as Go's `json.Marshal` writes a `[]byte` (a standard base64 string), and a firing's
//! `data` value (the raw JSON as registered through Dapr's APIs, or those bytes as base64 when
//! they are not JSON, as data registered through Rookery's own API may be) — and JSON as a
//! protobuf `google.protobuf.Value`, the form daprd keeps a job's JSON `data` in.

use bytes::Bytes;
use serde_json::value::RawValue;

/// The header (HTTP) and metadata key (gRPC) of Dapr's reentrancy id: Rookery's call chain.
pub const REENTRANCY_ID_HEADER: &str = "Dapr-Reentrancy-Id";
/// The header and metadata key of the API token (`DAPR_API_TOKEN`, `APP_API_TOKEN`).
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 alphabet, `=` padding).
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `data` as the JSON string Go's `json.Marshal([]byte)` makes of it (daprd keeps what gRPC
/// clients register so). No bytes: no data.
pub fn bytes_as_json(data: &[u8]) -> Bytes {
    if data.is_empty() {
        return Bytes::new();
    }
    Bytes::from(format!("\"{}\"", base64(data)))
}

/// `data` as a JSON value: itself when it is JSON, else [`bytes_as_json`]. `None` when empty.
pub fn data_as_json(data: &[u8]) -> Option<Box<RawValue>> {
    if data.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(data)
        .ok()
        .filter(|t| serde_json::from_str::<&RawValue>(t).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("\"{}\"", base64(data)));
    RawValue::from_string(text).ok()
}

/// JSON as the bytes of a protobuf `google.protobuf.Value` (numbers become doubles, as in
/// protobuf's JSON mapping).
pub fn json_to_protobuf_value(json: &serde_json::Value) -> Vec<u8> {
    use prost::Message;
    protobuf_value_of(json).encode_to_vec()
}

/// The bytes of a protobuf `google.protobuf.Value` as JSON.
pub fn protobuf_value_to_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    use prost::Message;
    let value = rookery_proto::google::protobuf::Value::decode(bytes)
        .map_err(|e| format!("not a google.protobuf.Value: {e}"))?;
    Ok(json_of(value))
}

fn protobuf_value_of(json: &serde_json::Value) -> rookery_proto::google::protobuf::Value {
    use rookery_proto::google::protobuf::{value::Kind, ListValue, NullValue, Struct, Value};
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(NullValue::NullValue as i32),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(protobuf_value_of).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), protobuf_value_of(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn json_of(value: rookery_proto::google::protobuf::Value) -> serde_json::Value {
    use rookery_proto::google::protobuf::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            // Whole numbers as integers, as Go's encoder writes them.
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(json_of).collect())
        }
        Some(Kind::StructValue(fields)) => serde_json::Value::Object(
            fields
                .fields
                .into_iter()
                .map(|(k, v)| (k, json_of(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_padded_alphabet() {
        // RFC 4648 §10 test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
    }

    #[test]
    fn bytes_become_a_base64_json_string_as_go_marshals_them() {
        assert_eq!(bytes_as_json(b"hello"), Bytes::from_static(b"\"aGVsbG8=\""));
        assert!(bytes_as_json(b"").is_empty(), "no bytes, no data");
    }

    #[test]
    fn json_data_stays_raw_and_other_bytes_become_base64() {
        assert_eq!(data_as_json(br#"{"n":1}"#).unwrap().get(), r#"{"n":1}"#);
        assert_eq!(data_as_json(br#""AQ==""#).unwrap().get(), r#""AQ==""#);
        assert_eq!(data_as_json(b"\x01").unwrap().get(), r#""AQ==""#);
        assert!(data_as_json(b"").is_none());
    }

    #[test]
    fn json_round_trips_through_a_protobuf_value() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"db":"prod","retries":3,"ratio":0.5,"tags":["a",null,true],"nested":{"x":{}}}"#,
        )
        .unwrap();
        let bytes = json_to_protobuf_value(&json);
        assert_eq!(protobuf_value_to_json(&bytes).unwrap(), json);
        assert!(protobuf_value_to_json(b"\xff\xff").is_err());
    }
}
