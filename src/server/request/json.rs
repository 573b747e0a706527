//! The JSON decoding rules of request bodies (PROTOCOL.md §1.2): malformed
//! JSON is 400, a well-formed body of the wrong shape is 422, and the
//! message names a position or a field, never a value.
//!
//! No HTTP types here: the fuzz crate (`fuzz/`) mounts this file as it is.

use serde::de::DeserializeOwned;

/// A JSON body refused: 400 (malformed JSON) or 422 (the wrong shape); the
/// code is always `validation_error`.
#[derive(Debug)]
pub(crate) struct JsonRejection {
    /// 400 or 422.
    pub status: u16,
    /// Names the position or the field, never a value.
    pub message: String,
}

/// Decodes a JSON body: malformed JSON is 400, a well-formed body of the
/// wrong shape is 422 (PROTOCOL.md §1.2). The directory and the node (for
/// every transport that carries JSON) share these rules.
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonRejection> {
    crate::wire::from_json_bytes(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => JsonRejection {
                status: 400,
                message: format!("malformed JSON (line {}, column {})", e.line(), e.column()),
            },
            Category::Data => JsonRejection {
                status: 422,
                message: describe_data_error(&e),
            },
        }
    })
}

/// A serde data error without the values it may quote. Messages that only
/// name fields or variants (`missing field`, `unknown variant`) are kept;
/// our own validators (intent URNs) quote only the intent, which is public.
fn describe_data_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let head = text.split(" at line ").next().unwrap_or(&text);
    let keeps_no_values = head.starts_with("missing field")
        || head.starts_with("unknown variant")
        || head.starts_with("duplicate field")
        || head.starts_with("intent ");
    if keeps_no_values {
        format!("invalid body: {head}")
    } else if head.starts_with("invalid type") {
        let expected = head.rsplit("expected ").next().unwrap_or("another type");
        format!("invalid body: a field has the wrong type (expected {expected})")
    } else {
        "invalid body: a field has an invalid value".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_at_the_same_position_as_before() {
        for body in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":1,\"k\xc3\":2}",
            b"\xef\xbb\xbf{}",
            b"{\"a\":\"ok\"}\xff",
        ] {
            let ours = decode_json::<Value>(body).unwrap_err();
            let bytewise = serde_json::from_slice::<Value>(body).unwrap_err();
            assert_eq!(ours.status, 400, "{body:?}");
            assert_eq!(
                ours.message,
                format!(
                    "malformed JSON (line {}, column {})",
                    bytewise.line(),
                    bytewise.column()
                )
            );
        }
        let v: Value = decode_json("{\"a\":\"é\"}".as_bytes()).unwrap();
        assert_eq!(v["a"], "é");
    }
}
