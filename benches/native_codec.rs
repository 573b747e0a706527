//! Native transport decoding: frames of 16 KiB and 1 MiB through the
//! streaming `FrameCodec` (as `Framed` drives it: socket reads of 64 KiB
//! copied into the read buffer, then split off without copying) and through
//! the copying `decode_one`; and CALL payload decoding (key 5 as JSON bytes,
//! as peers send it, and as a CBOR map).
//! Run: `cargo bench --bench native_codec`.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use iicp_client::transport::{Call, Frame, FrameCodec, decode_one, kind};
use serde_json::json;
use tokio_util::codec::{Decoder, Encoder};

const READ_CHUNK: usize = 64 * 1024;

fn encoded_frame(size: usize) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FrameCodec::new()
        .encode(Frame::new(kind::CALL, vec![0x5a; size]), &mut buf)
        .unwrap();
    buf.to_vec()
}

/// A chat CALL whose JSON payload is about `size` bytes.
fn chat_call(size: usize) -> Call {
    let content = "word ".repeat(size / 5);
    Call {
        session_id: Some("sess-1".into()),
        intent: Some("urn:iicp:intent:llm:chat:v1".into()),
        call_id: Some("call-1".into()),
        payload: json!({"messages": [{"role": "user", "content": content}], "max_tokens": 256}),
        ..Call::default()
    }
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("native_frame_decode");
    for size in [16 * 1024usize, 1024 * 1024] {
        let wire = encoded_frame(size);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(BenchmarkId::new("stream", size), &wire, |b, wire| {
            // One read buffer for the connection, as `Framed` keeps it: once
            // the previous payload is dropped, its allocation is reused.
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::with_capacity(8 * 1024);
            b.iter(|| {
                for chunk in wire.chunks(READ_CHUNK) {
                    buf.extend_from_slice(chunk);
                    if let Some(frame) = codec.decode(&mut buf).unwrap() {
                        return frame.payload.len();
                    }
                }
                unreachable!("the whole frame was fed")
            })
        });
        g.bench_with_input(BenchmarkId::new("decode_one", size), &wire, |b, wire| {
            b.iter(|| decode_one(wire).unwrap())
        });
    }
    g.finish();
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("native_call_decode");
    for size in [16 * 1024usize, 1024 * 1024] {
        let json_bytes = chat_call(size).encode();
        g.throughput(Throughput::Bytes(json_bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("json_payload", size),
            &json_bytes,
            |b, p| b.iter(|| Call::decode(p).unwrap()),
        );
    }
    // Key 5 as a CBOR map with text keys (what a CBOR-native client may send).
    let as_map = {
        let mut v = Vec::new();
        let payload = json!({"messages": [{"role": "user", "content": "word ".repeat(3276)}], "max_tokens": 256});
        let map = ciborium::Value::Map(vec![
            (3.into(), "urn:iicp:intent:llm:chat:v1".into()),
            (
                5.into(),
                ciborium::Value::serialized(&payload).expect("payload converts"),
            ),
            (15.into(), "call-1".into()),
        ]);
        ciborium::into_writer(&map, &mut v).unwrap();
        v
    };
    g.throughput(Throughput::Bytes(as_map.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("cbor_map_payload", 16 * 1024),
        &as_map,
        |b, p| b.iter(|| Call::decode(p).unwrap()),
    );
    g.finish();
}

criterion_group!(benches, frames, calls);
criterion_main!(benches);
