//! W3C `traceparent` (PROTOCOL.md §5.5): one value per submit, shared by
//! discovery and every task attempt (SDK-06 in the reference numbering).

use crate::error::IicpError;

/// A fresh `00-<32 hex>-<16 hex>-01` traceparent, written in place
/// (one allocation: this runs on every submit).
pub fn new_traceparent() -> String {
    // All-zero ids are invalid; random ids are never all zero in practice,
    // but set a bit rather than rely on it.
    let trace = (rand::random::<u128>() | 1).to_be_bytes();
    let span = (rand::random::<u64>() | 1).to_be_bytes();
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    // Both spans of the template are exactly twice the ids' lengths.
    let _ = hex::encode_to_slice(trace, &mut out[3..35]);
    let _ = hex::encode_to_slice(span, &mut out[36..52]);
    // ASCII throughout: the check cannot fail.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Checks a caller-supplied traceparent: `vv-<32 hex>-<16 hex>-ff`, lower
/// case, ids not all zero, version not `ff`.
pub fn check_traceparent(value: &str) -> Result<(), IicpError> {
    let parts: Vec<&str> = value.split('-').collect();
    let hex_ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = parts.len() >= 4
        && hex_ok(parts[0], 2)
        && parts[0] != "ff"
        && hex_ok(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex_ok(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex_ok(parts[3], 2);
    if valid {
        Ok(())
    } else {
        Err(IicpError::InvalidConfig(
            "traceparent must look like 00-<32 hex>-<16 hex>-<2 hex> (W3C Trace Context)".into(),
        ))
    }
}

/// The traceparent for one call: the caller's, once checked, or a fresh one.
pub(crate) fn resolve(caller: Option<&str>) -> Result<String, IicpError> {
    match caller {
        Some(t) => check_traceparent(t).map(|()| t.to_owned()),
        None => Ok(new_traceparent()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_valid_and_distinct() {
        let a = new_traceparent();
        let b = new_traceparent();
        assert_ne!(a, b);
        check_traceparent(&a).unwrap();
        assert_eq!(a.len(), 55);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-0000000000000001-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert!(check_traceparent(bad).is_err(), "{bad}");
        }
        check_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    }
}
