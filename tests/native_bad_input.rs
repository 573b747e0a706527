//! Hostile and malformed native payloads: every class gets a typed
//! `MessageError` with the CLOSE reason PROTOCOL.md names, never a panic,
//! and nothing proportional to a declared (rather than actual) length.
//!
//! The last two tests are a stable-Rust stand-in for fuzzing in CI: random
//! bytes and byte-level mutations of valid frames and messages, from a fixed
//! seed, through the frame decoder and every message decoder.

#![cfg(feature = "iicp-tcp")]

use bytes::BytesMut;
use iicp_client::transport::{
    Call, CborLimits, Echo, Frame, FrameCodec, Message, MessageError, Response, flags, kind,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio_util::codec::Decoder;

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).expect("test hex")
}

/// Decodes `payload` as `kind` and returns the error, failing if it decodes.
fn refused(kind: u8, payload: &[u8]) -> MessageError {
    match Message::decode(kind, payload) {
        Ok(m) => panic!("accepted {m:?} from {}", hex::encode(payload)),
        Err(e) => e,
    }
}

#[test]
fn garbage_cbor_is_a_protocol_error() {
    for hex in [
        "ff",         // a lone break
        "1c",         // reserved additional information
        "a1",         // a map with its entry missing
        "a10162",     // text announced, not there
        "a1016261ff", // invalid UTF-8 in text
        "a2010101",   // two pairs announced, one given
        "bf0101",     // indefinite map without its break
    ] {
        for k in [kind::INIT, kind::CALL, kind::RESPONSE, kind::PING] {
            let e = refused(k, &bytes(hex));
            assert!(matches!(e, MessageError::Malformed(_)), "{hex}: {e:?}");
            assert_eq!(e.reason(), "protocol_error");
            assert_eq!(e.close_reason().as_str(), "protocol_error");
        }
    }
}

#[test]
fn a_top_level_that_is_not_a_map_is_refused() {
    for (hex, found) in [
        ("83010203", "array"),
        ("6161", "text string"),
        ("01", "integer"),
        ("f6", "null"),
    ] {
        let e = refused(kind::CALL, &bytes(hex));
        assert_eq!(e, MessageError::NotAMap { found }, "{hex}");
        assert_eq!(e.reason(), "protocol_error");
    }
}

#[test]
fn trailing_bytes_after_the_map_are_refused() {
    assert_eq!(
        refused(kind::INIT, &bytes("a1010100")),
        MessageError::TrailingBytes(1)
    );
}

#[test]
fn wrong_types_in_known_keys_name_the_key() {
    let cases: &[(u8, &str, u64)] = &[
        (kind::CALL, "a10305", 3),                 // intent: integer
        (kind::CALL, "a10f80", 15),                // call_id: array
        (kind::CALL, "a10b01", 11),                // auth_token: integer
        (kind::CALL, "a1066178", 6),               // timeout: "x"
        (kind::CALL, "a10620", 6),                 // timeout: -1
        (kind::CALL, "a10d420102", 13),            // trace_id: 2 bytes
        (kind::CALL, "a105417b", 5),               // payload: bytes that are not JSON
        (kind::CALL, "a10541ff", 5),               // payload: bytes that are not UTF-8
        (kind::INIT, "a1016131", 1),               // version: "1"
        (kind::INIT, "a10120", 1),                 // version: -1
        (kind::ACK, "a102f5", 2),                  // node_id: true
        (kind::PING, "a1016161", 1),               // echo: text
        (kind::CLOSE, "a10101", 1),                // reason: integer
        (kind::DISCOVER, "a10105", 1),             // spec-layout intent: integer
        (kind::RESPONSE, "a118646135", 100),       // error code: "5"
        (kind::RESPONSE, "a10d05", 13),            // lifecycle: integer
        (kind::RESPONSE, "a10da0", 3),             // lifecycle without its event
        (kind::RESPONSE, "a10da1036462616e67", 3), // event "bang"
        (kind::RESPONSE, "a10c01", 12),            // is_final: integer
        (kind::RESPONSE, "a11405", 20),            // discover nodes: integer
    ];
    for &(k, hex, key) in cases {
        let e = refused(k, &bytes(hex));
        let named = match &e {
            MessageError::WrongType { key, .. }
            | MessageError::InvalidValue { key, .. }
            | MessageError::Missing { key, .. } => *key,
            other => panic!("{hex}: unexpected {other:?}"),
        };
        assert_eq!(named, key, "{hex}: {e}");
        assert_eq!(e.reason(), "protocol_error", "{hex}");
        assert!(e.to_string().contains(&format!("key {key} (")), "{e}");
    }
}

#[test]
fn an_echo_over_64_bytes_is_refused() {
    let mut payload = bytes("a1015841"); // {1: 65-byte string}
    payload.extend([7u8; 65]);
    let e = Echo::decode(&payload).unwrap_err();
    assert!(
        matches!(e, MessageError::InvalidValue { key: 1, .. }),
        "{e:?}"
    );
    assert_eq!(e.reason(), "protocol_error");
    let mut ok = bytes("a1015840");
    ok.extend([7u8; 64]);
    assert_eq!(Echo::decode(&ok).unwrap().echo.unwrap().len(), 64);
}

/// `{5: [[[…]]]}` as CBOR nesting, and the same as JSON text in key 5.
#[test]
fn over_deep_nesting_is_refused_without_recursing_on_it() {
    let nested = |depth: usize| {
        let mut p = bytes("a105");
        p.extend(std::iter::repeat_n(0x81, depth));
        p.push(0x00);
        p
    };
    // Key 5's array sits at depth 2 (the map is 1): 63 arrays fit in 64.
    let call = Call::decode(&nested(63)).unwrap();
    assert!(call.payload.is_array());
    for depth in [64, 200_000] {
        let e = Call::decode(&nested(depth)).unwrap_err();
        assert_eq!(e, MessageError::TooDeep { max: 64 }, "depth {depth}");
        assert_eq!(e.reason(), "protocol_error");
    }
    // Tags nest too: {5: 6(6(6(…0…)))}.
    let mut tags = bytes("a105");
    tags.extend(std::iter::repeat_n(0xc6, 100_000));
    tags.push(0x00);
    assert!(matches!(
        Call::decode(&tags),
        Err(MessageError::TooDeep { .. })
    ));
    // JSON inside bytes is bounded by serde_json's own recursion limit.
    let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut p = bytes("a1055a");
    p.extend((json.len() as u32).to_be_bytes());
    p.extend(json.as_bytes());
    let e = Call::decode(&p).unwrap_err();
    assert!(
        matches!(e, MessageError::InvalidValue { key: 5, .. }),
        "{e:?}"
    );
}

#[test]
fn the_item_budget_bounds_decoded_size() {
    let limits = CborLimits {
        max_items: 1000,
        ..CborLimits::default()
    };
    // {5: [0, 0, …]} with 2000 items.
    let mut p = bytes("a10599");
    p.extend(2000u16.to_be_bytes());
    p.extend([0u8; 2000]);
    let e = Call::decode_with(&p, &limits).unwrap_err();
    assert_eq!(e, MessageError::TooManyItems { max: 1000 });
    assert_eq!(e.reason(), "payload_too_large");
    assert!(Call::decode(&p).is_ok(), "the default budget allows it");
    // The budget also applies to CBOR nested in a RESPONSE's key 5:
    // {5: bytes([0, 0, …])}.
    let mut r = bytes("a1055907d39907d0");
    r.extend([0u8; 2000]);
    let e = Response::decode_with(&r, &limits).unwrap_err();
    assert_eq!(e, MessageError::TooManyItems { max: 1000 });
}

#[test]
fn declared_lengths_beyond_the_payload_fail_cleanly() {
    for hex in [
        "a1059bffffffffffffffff", // array of 2^64-1 items
        "a105bb7fffffffffffffff", // map of 2^63-1 pairs
        "a1055bffffffffffffffff", // byte string of 2^64-1 bytes
        "a1057b00000000ffffffff", // text string of 4 GiB
    ] {
        let e = refused(kind::CALL, &bytes(hex));
        assert!(matches!(e, MessageError::Malformed(_)), "{hex}: {e:?}");
    }
}

#[test]
fn unknown_types_and_unsupported_flags_have_their_own_reasons() {
    for k in [
        kind::SUB_PROTOCOL,
        kind::FEEDBACK,
        kind::OBSERVE,
        0x0F,
        0xF0,
        0xFF,
    ] {
        let e = refused(k, &bytes("a0"));
        assert_eq!(e, MessageError::UnknownType(k));
        assert_eq!(e.reason(), "unknown_type");
    }
    for bit in [flags::GZIP, flags::FRAGMENT, flags::CONF_ENCRYPTED] {
        let mut frame = Frame::new(kind::PING, bytes("a0"));
        frame.flags = bit | 0x80;
        let e = Message::from_frame(&frame).unwrap_err();
        assert_eq!(e, MessageError::UnsupportedFlags(bit));
        assert_eq!(e.reason(), "unsupported_extension");
    }
    // Unknown flag bits alone are ignored.
    let mut frame = Frame::new(kind::PING, bytes("a0"));
    frame.flags = 0xF0;
    assert!(Message::from_frame(&frame).is_ok());
}

fn valid_samples() -> Vec<(u8, Vec<u8>)> {
    [
        (kind::INIT, "a70102020103666e6f64652d610463746f6b0581686c6c6d3a63686174068164677a6970071a00100000"),
        (kind::CALL, "a50266736573732d3103781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310558317b226d65737361676573223a205b7b22726f6c65223a202275736572222c2022636f6e74656e74223a20226869227d5d7d0f6663616c6c2d311818667461736b2d31"),
        (kind::CALL, "a71818667461736b2d310f6663616c6c2d31186382010205a1686d6573736167657381a264726f6c65647573657267636f6e74656e7462686903781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310266736573732d31617801"),
        (kind::RESPONSE, "a8010102617303616304677061727469616c05a16564656c746162686507030cf40da4016174020203677061727469616c04f4"),
        (kind::RESPONSE, "a30261730551a2666f75747075746568656c6c6f616e010f6163"),
        (kind::DISCOVER, "a501781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310205036765752d776573740482626e31626e3205fb3fe0000000000000"),
        (kind::PING, "a10143616263"),
    ]
    .into_iter()
    .map(|(k, h)| (k, bytes(h)))
    .collect()
}

/// Random bytes and mutations of valid payloads through every message
/// decoder: each returns Ok or a typed error, and never panics.
#[test]
fn random_and_mutated_payloads_never_panic() {
    let mut rng = StdRng::seed_from_u64(13);
    let kinds = [
        kind::INIT,
        kind::ACK,
        kind::DISCOVER,
        kind::CALL,
        kind::RESPONSE,
        kind::CLOSE,
        kind::PING,
        kind::PONG,
    ];
    let samples = valid_samples();
    let (mut ok, mut refused) = (0u32, 0u32);
    for round in 0..40_000 {
        let payload: Vec<u8> = if round % 2 == 0 {
            let len = rng.random_range(0..48);
            (0..len).map(|_| rng.random()).collect()
        } else {
            let (_, sample) = &samples[rng.random_range(0..samples.len())];
            let mut p = sample.clone();
            for _ in 0..rng.random_range(1..4) {
                match rng.random_range(0..3) {
                    0 if !p.is_empty() => {
                        let i = rng.random_range(0..p.len());
                        p[i] = rng.random();
                    }
                    1 if !p.is_empty() => p.truncate(rng.random_range(0..p.len())),
                    _ => {
                        let i = rng.random_range(0..=p.len());
                        p.insert(i, rng.random());
                    }
                }
            }
            p
        };
        for k in kinds {
            match Message::decode(k, &payload) {
                Ok(m) => {
                    ok += 1;
                    // Whatever decodes re-encodes to something that decodes.
                    Message::decode(k, &m.encode()).expect("re-encoded message decodes");
                }
                Err(_) => refused += 1,
            }
        }
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}

/// Random and mutated byte streams through the streaming frame decoder:
/// it yields frames or a typed error, and never panics or over-reserves.
#[test]
fn random_and_mutated_streams_through_the_frame_decoder() {
    let mut rng = StdRng::seed_from_u64(0xF4A3E);
    let mut valid = BytesMut::new();
    for (k, payload) in valid_samples() {
        tokio_util::codec::Encoder::encode(
            &mut FrameCodec::new(),
            Frame::new(k, payload),
            &mut valid,
        )
        .unwrap();
    }
    for _ in 0..20_000 {
        let mut stream = valid.to_vec();
        for _ in 0..rng.random_range(0..4) {
            let i = rng.random_range(0..stream.len());
            stream[i] = rng.random();
        }
        let mut codec = FrameCodec::with_max_payload(1 << 16);
        let mut buf = BytesMut::new();
        'feed: for chunk in stream.chunks(rng.random_range(1..64)) {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let _ = Message::from_frame(&frame);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(
                            ["invalid_magic", "frame_too_large"].contains(&e.reason()),
                            "{e}"
                        );
                        break 'feed;
                    }
                }
            }
            assert!(
                buf.capacity() <= 4 << 16,
                "over-reserved: {}",
                buf.capacity()
            );
        }
    }
}
