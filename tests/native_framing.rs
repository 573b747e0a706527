//! The native frame codec (`iicp_client::transport::FrameCodec`) against the
//! shared vectors `../shared/vectors/native-framing-v1.json`, through both the
//! one-buffer `decode_one` and the streaming `Decoder`, plus the streaming
//! behaviours the vectors do not cover (split input, several frames per
//! buffer, end of stream mid-frame, limits, zero-copy payloads).

#![cfg(feature = "iicp-tcp")]

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use iicp_client::transport::{
    DEFAULT_MAX_FRAME_PAYLOAD, Frame, FrameCodec, FrameError, HEADER_LEN, decode_one, kind,
};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/");

fn scenarios() -> Vec<Value> {
    let path = format!("{VECTORS}native-framing-v1.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let doc: Value = serde_json::from_slice(&text).expect("vector is JSON");
    assert_eq!(doc["frame"]["header_bytes"], 12, "header length changed");
    let list = doc["scenarios"].as_array().expect("scenarios").clone();
    assert!(list.len() >= 7, "fewer scenarios than expected");
    list
}

fn field<'a>(s: &'a Value, key: &str) -> &'a Value {
    s.get(key)
        .unwrap_or_else(|| panic!("scenario lacks {key}: {s}"))
}

fn wire(s: &Value) -> Vec<u8> {
    hex::decode(field(s, "wire_hex").as_str().expect("wire_hex")).expect("hex")
}

fn assert_accepted(name: &str, frame: &Frame, consumed: usize, expected: &Value) {
    assert_eq!(frame.version as u64, expected["version"], "{name}: version");
    assert_eq!(frame.kind as u64, expected["message_type"], "{name}: type");
    assert_eq!(frame.flags as u64, expected["flags"], "{name}: flags");
    assert_eq!(
        hex::encode(&frame.payload),
        expected["payload_hex"].as_str().unwrap(),
        "{name}: payload"
    );
    assert_eq!(consumed as u64, expected["consumed"], "{name}: consumed");
}

#[test]
fn every_vector_through_decode_one() {
    for s in scenarios() {
        let name = field(&s, "name").as_str().unwrap();
        let expected = field(&s, "expected");
        let result = decode_one(&wire(&s));
        match expected["outcome"].as_str().unwrap() {
            "accept" => {
                let (frame, consumed) =
                    result.unwrap_or_else(|e| panic!("{name}: refused with {e}"));
                assert_accepted(name, &frame, consumed, expected);
            }
            "reject" => {
                let err = result.err().unwrap_or_else(|| panic!("{name}: accepted"));
                assert_eq!(err.reason(), expected["reason"], "{name}: {err}");
                assert_eq!(err.close_reason().as_str(), err.reason());
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
}

/// The streaming decoder sees the same bytes; a reject by truncation shows
/// up as "need more" while the stream is open and as the vector's reason at
/// end of stream.
#[test]
fn every_vector_through_the_streaming_decoder() {
    for s in scenarios() {
        let name = field(&s, "name").as_str().unwrap();
        let expected = field(&s, "expected");
        let bytes = wire(&s);
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&bytes[..]);
        match expected["outcome"].as_str().unwrap() {
            "accept" => {
                let frame = codec
                    .decode(&mut buf)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .unwrap_or_else(|| panic!("{name}: no frame"));
                assert_accepted(name, &frame, bytes.len() - buf.len(), expected);
                assert!(buf.is_empty(), "{name}: bytes left");
            }
            "reject" => {
                let reason = expected["reason"].as_str().unwrap();
                let err = match codec.decode(&mut buf) {
                    Err(e) => e,
                    Ok(None) => {
                        assert!(reason.starts_with("truncated_"), "{name}: waited");
                        codec.decode_eof(&mut buf).expect_err("eof must fail")
                    }
                    Ok(Some(f)) => panic!("{name}: accepted {f:?}"),
                };
                assert_eq!(err.reason(), reason, "{name}: {err}");
            }
            other => panic!("{name}: unknown outcome {other}"),
        }
    }
}

/// All accepted vectors back to back, fed one byte at a time: the decoder
/// yields exactly them, in order, and never errs on a partial header.
#[test]
fn accepted_vectors_decode_from_one_byte_at_a_time() {
    let accepted: Vec<(Vec<u8>, Value)> = scenarios()
        .into_iter()
        .filter(|s| s["expected"]["outcome"] == "accept")
        .map(|s| (wire(&s), s["expected"].clone()))
        .collect();
    let stream: Vec<u8> = accepted.iter().flat_map(|(w, _)| w.clone()).collect();
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for byte in stream {
        buf.put_u8(byte);
        while let Some(frame) = codec.decode(&mut buf).expect("valid stream") {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), accepted.len());
    for (frame, (w, expected)) in frames.iter().zip(&accepted) {
        assert_accepted("stream", frame, w.len(), expected);
    }
}

#[test]
fn encode_then_decode_gives_the_frame_back_with_flags_and_version() {
    let mut codec = FrameCodec::new();
    let frames = [
        Frame::new(kind::PING, Vec::new()),
        Frame {
            version: 7,
            kind: 0xF3,
            flags: 0x81,
            payload: vec![0xa1, 0x01, 0x01].into(),
        },
        Frame::new(kind::CALL, vec![0x5a; 70_000]),
    ];
    let mut buf = BytesMut::new();
    for f in &frames {
        codec.encode(f, &mut buf).unwrap();
    }
    assert_eq!(&buf[..4], b"IICP");
    assert_eq!(buf[7], 0, "reserved byte is written as zero");
    for f in &frames {
        assert_eq!(codec.decode(&mut buf).unwrap().as_ref(), Some(f));
    }
    assert!(codec.decode(&mut buf).unwrap().is_none());
}

#[test]
fn the_vector_header_is_what_the_encoder_writes() {
    let mut buf = BytesMut::new();
    FrameCodec::new()
        .encode(Frame::new(kind::CALL, vec![0xa1, 0x01, 0x01]), &mut buf)
        .unwrap();
    assert_eq!(hex::encode(&buf), "494943500105000000000003a10101");
}

#[test]
fn payloads_are_split_off_the_read_buffer_without_copying() {
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::new();
    codec
        .encode(Frame::new(kind::CALL, vec![7u8; 1 << 20]), &mut buf)
        .unwrap();
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    let at = frame.payload.as_ptr() as usize;
    assert_eq!(at, start + HEADER_LEN, "payload was copied");
    assert!(at + frame.payload.len() <= end);
}

#[test]
fn lengths_over_the_maximum_are_refused_at_the_header() {
    let header = |len: u32| {
        let mut h = b"IICP\x01\x05\x00\x00".to_vec();
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    let over = DEFAULT_MAX_FRAME_PAYLOAD as u32 + 1;
    let err = decode_one(&header(over)).unwrap_err();
    assert_eq!(err.reason(), "frame_too_large");
    assert!(err.to_string().contains("frame_too_large"), "{err}");
    // Exactly the maximum is a valid length (it only waits for the payload).
    let mut buf = BytesMut::from(&header(DEFAULT_MAX_FRAME_PAYLOAD as u32)[..]);
    assert!(FrameCodec::new().decode(&mut buf).unwrap().is_none());
    // A lower configured maximum applies to both directions.
    let mut small = FrameCodec::with_max_payload(100);
    let mut buf = BytesMut::from(&header(101)[..]);
    assert!(matches!(
        small.decode(&mut buf),
        Err(FrameError::TooLarge {
            length: 101,
            max: 100
        })
    ));
    assert!(
        small
            .decode_one(&header(100))
            .is_err_and(|e| e.reason() == "truncated_payload")
    );
}

/// Encoded frames → in-memory pipe → FramedRead: several frames, one large,
/// and a writer that stops mid-frame ends the reader with its reason.
#[tokio::test]
async fn framed_read_over_an_in_memory_pipe() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let mut reader = FramedRead::new(server, FrameCodec::new());
    let writer = tokio::spawn(async move {
        let mut codec = FrameCodec::new();
        let mut out = BytesMut::new();
        codec
            .encode(Frame::new(kind::PING, vec![0xa0]), &mut out)
            .unwrap();
        codec
            .encode(Frame::new(kind::CALL, vec![1u8; 3 << 20]), &mut out)
            .unwrap();
        // Then half a header, and hang up.
        out.put_slice(b"IICP\x01\x05");
        client.write_all(&out).await.unwrap();
    });
    let ping = reader.next().await.unwrap().unwrap();
    assert_eq!(ping.kind, kind::PING);
    let call = reader.next().await.unwrap().unwrap();
    assert_eq!(call.payload.len(), 3 << 20);
    writer.await.unwrap();
    let err = reader.next().await.unwrap().unwrap_err();
    assert_eq!(err.reason(), "truncated_header");
}
