//! Typed native messages (`iicp_client::transport::Message` and friends):
//! encode → decode round trips for every message (a table, then random values
//! from a fixed seed), decoding of payloads written by the Python SDK
//! (`iicp-client` 0.7.109 with cbor2; hex captured once, see each case) in
//! both key layouts and in any key order, and byte-exact deterministic output
//! checked against cbor2's canonical encoding.

#![cfg(feature = "iicp-tcp")]

use std::time::Duration;

use iicp_client::Secret;
use iicp_client::transport::{
    Ack, BufferedError, BufferedResponse, Call, Close, CloseReason, Discover, DiscoverQuery,
    DiscoverReply, Echo, Init, Lifecycle, LifecycleEvent, Message, Response, ResultEncoding,
    SpecError, SpecResponse, kind,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const CHAT: &str = "urn:iicp:intent:llm:chat:v1";

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).expect("test hex")
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Decodes `m`'s encoding, through the frame too, and checks it comes back
/// equal and that re-encoding gives the same bytes.
fn assert_round_trip(m: &Message) {
    let encoded = m.encode();
    let back = Message::decode(m.kind(), &encoded)
        .unwrap_or_else(|e| panic!("{m:?} did not decode: {e}\n{}", hex::encode(&encoded)));
    assert_eq!(&back, m, "\n{}", hex::encode(&encoded));
    assert_eq!(back.encode(), encoded, "re-encoding differs");
    assert_eq!(Message::from_frame(&m.to_frame()).unwrap(), *m);
}

fn full_call() -> Call {
    Call {
        protocol_version: Some(1),
        session_id: s("sess-1"),
        intent: s(CHAT),
        provider_id: s("node-9"),
        payload: json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        timeout: Some(Duration::from_millis(2500)),
        auth_token: Some(Secret::new("tok")),
        trace_id: Some(*b"0123456789abcdef"),
        call_id: s("call-1"),
        idempotency_key: s("idem-1"),
        qos: s("interactive"),
        task_id: s("task-1"),
    }
}

fn step(event: LifecycleEvent, sequence: u64) -> SpecResponse {
    SpecResponse::step(
        s("s"),
        s("c"),
        Lifecycle {
            task_id: s("t"),
            sequence,
            event,
            is_final: event.is_terminal(),
        },
    )
}

#[test]
fn every_message_round_trips() {
    let mut failed = step(LifecycleEvent::Failed, 4);
    failed.error = Some(SpecError {
        code: s("backend_error"),
        message: s("boom"),
    });
    let mut completed = step(LifecycleEvent::Completed, 3);
    completed.result = Some(json!({"output": "hello"}));
    completed.tokens_used = Some(12);
    completed.duration_ms = Some(340);
    completed.node_id = s("node-1");

    let table = vec![
        Message::Init(Init::with_version(1)),
        Message::Init(Init::default()),
        Message::Init(Init {
            version: Some(2),
            min_version: Some(1),
            node_id: s("node-a"),
            node_token: Some(Secret::new("tok")),
            capabilities: Some(json!(["llm:chat", {"x": 1}])),
            compression: Some(vec!["gzip".into(), "zstd".into()]),
            max_frame_size: Some(1 << 20),
        }),
        Message::Ack(Ack {
            version: Some(1),
            node_id: s("node-b"),
        }),
        Message::Discover(Discover::Session {
            session_id: s("s"),
            intent: s(CHAT),
        }),
        Message::Discover(Discover::Query(DiscoverQuery {
            intent: s(CHAT),
            limit: Some(5),
            region: s("eu-west"),
            exclude: Some(vec!["n1".into()]),
            min_score: Some(0.5),
        })),
        Message::Call(full_call()),
        Message::Call(Call::default()),
        Message::Call(Call {
            payload: json!("just text"),
            timeout: Some(Duration::from_secs(30)),
            ..Call::default()
        }),
        Message::Response(Response::Buffered(BufferedResponse {
            session_id: s("s"),
            call_id: s("c"),
            result: Some(json!({"output": "hello", "n": [1, -2, 2.5]})),
            encoding: ResultEncoding::CborBytes,
        })),
        Message::Response(Response::Buffered(BufferedResponse {
            call_id: s("c"),
            result: Some(json!({"status": "completed"})),
            encoding: ResultEncoding::JsonBytes,
            ..BufferedResponse::default()
        })),
        Message::Response(Response::Buffered(BufferedResponse {
            call_id: s("c"),
            result: Some(json!("inline")),
            encoding: ResultEncoding::Inline,
            ..BufferedResponse::default()
        })),
        Message::Response(Response::Error(BufferedError {
            code: 503,
            message: s("busy"),
            error: Some(SpecError {
                code: s("IICP-E005"),
                message: s("busy"),
            }),
            session_id: s("s"),
            call_id: s("c"),
        })),
        Message::Response(Response::Spec(step(LifecycleEvent::Accepted, 0))),
        Message::Response(Response::Spec(completed)),
        Message::Response(Response::Spec(failed)),
        Message::Response(Response::Discover(DiscoverReply {
            session_id: s("s"),
            intent: s(CHAT),
            nodes: vec![json!({"node_id": "n1", "load": 0.25})],
        })),
        Message::Close(Close::new(CloseReason::IdleTimeout, "no frame for 60 s")),
        Message::Close(Close {
            reason: Some(CloseReason::Other("relay_gone".into())),
            message: None,
            session_id: s("s"),
        }),
        Message::Close(Close::default()),
        Message::Ping(Echo {
            echo: Some(vec![0xab; 64].into()),
        }),
        Message::Ping(Echo::default()),
        Message::Pong(Echo {
            echo: Some(b"abc".to_vec().into()),
        }),
    ];
    for m in &table {
        assert_round_trip(m);
    }
}

// ---- random values from a fixed seed ---------------------------------------

fn rand_text(rng: &mut StdRng) -> String {
    const PARTS: [&str; 8] = ["a", "Z", "0", "-", " ", "é", "字", "🚀"];
    (0..rng.random_range(0..10))
        .map(|_| PARTS[rng.random_range(0..PARTS.len())])
        .collect()
}

fn rand_opt_text(rng: &mut StdRng) -> Option<String> {
    rng.random_bool(0.7).then(|| rand_text(rng))
}

fn rand_json(rng: &mut StdRng, depth: u32) -> Value {
    let pick = if depth == 0 {
        rng.random_range(0..6)
    } else {
        rng.random_range(0..8)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<u64>()),
        // Multiples of 1/64: serde_json (without `float_roundtrip`) may parse
        // an arbitrary float from JSON text one ulp off, which is JSON's
        // business, not the codec's.
        4 => json!(rng.random_range(-1_000_000_000i64..1_000_000_000) as f64 / 64.0),
        5 => Value::String(rand_text(rng)),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| rand_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.random_range(0..4))
                .map(|_| (rand_text(rng), rand_json(rng, depth - 1)))
                .collect(),
        ),
    }
}

fn rand_object(rng: &mut StdRng) -> Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.random_range(0..4) {
        map.insert(rand_text(rng), rand_json(rng, 3));
    }
    Value::Object(map)
}

fn rand_message(rng: &mut StdRng) -> Message {
    match rng.random_range(0..11) {
        0 => Message::Init(Init {
            version: rng.random_bool(0.8).then(|| rng.random()),
            min_version: rng.random_bool(0.5).then(|| rng.random()),
            node_id: rand_opt_text(rng),
            node_token: rand_opt_text(rng).map(Secret::new),
            capabilities: rng.random_bool(0.5).then(|| rand_object(rng)),
            compression: rng.random_bool(0.5).then(|| {
                (0..rng.random_range(0..3))
                    .map(|_| rand_text(rng))
                    .collect()
            }),
            max_frame_size: rng.random_bool(0.5).then(|| rng.random()),
        }),
        1 => Message::Ack(Ack {
            version: rng.random_bool(0.8).then(|| rng.random()),
            node_id: rand_opt_text(rng),
        }),
        2 => Message::Discover(if rng.random() {
            Discover::Session {
                session_id: rand_opt_text(rng),
                intent: rand_opt_text(rng),
            }
        } else {
            Discover::Query(DiscoverQuery {
                intent: Some(rand_text(rng)),
                limit: rng.random_bool(0.5).then(|| rng.random()),
                region: rand_opt_text(rng),
                exclude: rng.random_bool(0.5).then(|| {
                    (0..rng.random_range(0..3))
                        .map(|_| rand_text(rng))
                        .collect()
                }),
                min_score: rng.random_bool(0.5).then(|| rng.random_range(0.0..1.0)),
            })
        }),
        3 | 4 => Message::Call(Call {
            protocol_version: rng.random_bool(0.3).then(|| rng.random()),
            session_id: rand_opt_text(rng),
            intent: rand_opt_text(rng),
            provider_id: rand_opt_text(rng),
            payload: if rng.random_bool(0.8) {
                rand_object(rng)
            } else {
                Value::Null
            },
            // Whole and half seconds: exact in binary floating point.
            timeout: rng
                .random_bool(0.5)
                .then(|| Duration::from_millis(rng.random_range(0..100_000u64) * 500)),
            auth_token: rand_opt_text(rng).map(Secret::new),
            trace_id: rng.random_bool(0.5).then(|| rng.random()),
            call_id: rand_opt_text(rng),
            idempotency_key: rand_opt_text(rng),
            qos: rand_opt_text(rng),
            task_id: rand_opt_text(rng),
        }),
        5 => {
            let encoding = [
                ResultEncoding::CborBytes,
                ResultEncoding::JsonBytes,
                ResultEncoding::Inline,
            ][rng.random_range(0..3)];
            // Relay (JSON) results are objects: a bare JSON digit would also be
            // valid CBOR, which PROTOCOL.md §7.2 reads first.
            let result = rng.random_bool(0.8).then(|| rand_object(rng));
            Message::Response(Response::Buffered(BufferedResponse {
                session_id: rand_opt_text(rng),
                call_id: rand_opt_text(rng),
                // Without a result there is no encoding to remember.
                encoding: if result.is_some() {
                    encoding
                } else {
                    ResultEncoding::default()
                },
                result,
            }))
        }
        6 => Message::Response(Response::Error(BufferedError {
            code: rng.random(),
            message: rand_opt_text(rng),
            error: rng.random_bool(0.3).then(|| SpecError {
                code: rand_opt_text(rng),
                message: rand_opt_text(rng),
            }),
            session_id: rand_opt_text(rng),
            call_id: rand_opt_text(rng),
        })),
        7 => {
            let events = [
                LifecycleEvent::Accepted,
                LifecycleEvent::Partial,
                LifecycleEvent::Completed,
                LifecycleEvent::Failed,
                LifecycleEvent::Cancelled,
                LifecycleEvent::TimedOut,
            ];
            let event = events[rng.random_range(0..events.len())];
            let mut r = SpecResponse::step(
                rand_opt_text(rng),
                rand_opt_text(rng),
                Lifecycle {
                    task_id: rand_opt_text(rng),
                    sequence: rng.random(),
                    event,
                    is_final: rng.random(),
                },
            );
            r.result = rng.random_bool(0.5).then(|| rand_object(rng));
            r.error = rng.random_bool(0.3).then(|| SpecError {
                code: rand_opt_text(rng),
                message: rand_opt_text(rng),
            });
            r.tokens_used = rng.random_bool(0.5).then(|| rng.random());
            r.duration_ms = rng.random_bool(0.5).then(|| rng.random());
            r.node_id = rand_opt_text(rng);
            if rng.random_bool(0.2) {
                r.lifecycle = None;
            }
            Message::Response(Response::Spec(r))
        }
        8 => Message::Response(Response::Discover(DiscoverReply {
            session_id: rand_opt_text(rng),
            intent: rand_opt_text(rng),
            nodes: (0..rng.random_range(0..3))
                .map(|_| rand_object(rng))
                .collect(),
        })),
        9 => Message::Close(Close {
            reason: rand_opt_text(rng).map(|r| CloseReason::from(r.as_str())),
            message: rand_opt_text(rng),
            session_id: rand_opt_text(rng),
        }),
        _ => {
            let echo = rng.random_bool(0.8).then(|| {
                let len = rng.random_range(0..=64);
                (0..len)
                    .map(|_| rng.random::<u8>())
                    .collect::<Vec<u8>>()
                    .into()
            });
            if rng.random() {
                Message::Ping(Echo { echo })
            } else {
                Message::Pong(Echo { echo })
            }
        }
    }
}

#[test]
fn random_messages_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x11C9_2026);
    for _ in 0..3000 {
        assert_round_trip(&rand_message(&mut rng));
    }
}

// ---- payloads written by the Python SDK (cbor2) -----------------------------

/// `IicpTcpClient.call` as the Python SDK builds it (insertion order, key 5 a
/// byte string of JSON with spaces).
#[test]
fn decodes_the_python_clients_streaming_call() {
    let hex = "a50266736573732d3103781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310558317b226d65737361676573223a205b7b22726f6c65223a202275736572222c2022636f6e74656e74223a20226869227d5d7d0f6663616c6c2d311818667461736b2d31";
    let Message::Call(call) = Message::decode(kind::CALL, &bytes(hex)).unwrap() else {
        panic!("not a CALL")
    };
    assert_eq!(call.session_id.as_deref(), Some("sess-1"));
    assert_eq!(call.intent.as_deref(), Some(CHAT));
    assert_eq!(call.call_id.as_deref(), Some("call-1"));
    assert_eq!(call.task_id.as_deref(), Some("task-1"));
    assert!(call.is_streaming());
    assert_eq!(
        call.payload,
        json!({"messages": [{"role": "user", "content": "hi"}]})
    );
}

/// Keys in descending order, key 5 a CBOR map with text keys, an unknown
/// integer key (99) and a text key ("x") that must be ignored.
#[test]
fn decodes_unordered_keys_and_a_cbor_map_payload() {
    let hex = "a71818667461736b2d310f6663616c6c2d31186382010205a1686d6573736167657381a264726f6c65647573657267636f6e74656e7462686903781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310266736573732d31617801";
    let call = Call::decode(&bytes(hex)).unwrap();
    assert_eq!(call.session_id.as_deref(), Some("sess-1"));
    assert_eq!(call.task_id.as_deref(), Some("task-1"));
    assert_eq!(
        call.payload,
        json!({"messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn decodes_a_text_json_payload_and_the_spec_call_keys() {
    let text = "a205707b2270726f6d7074223a20226869227d03781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a7631";
    let call = Call::decode(&bytes(text)).unwrap();
    assert_eq!(call.payload, json!({"prompt": "hi"}));
    assert!(!call.is_streaming());

    // {1:1, 2:"s", 3:CHAT, 4:"node-9", 5:b'{"a":1}', 6:2.5, 11:"tok",
    //  13:h'00..0f', 15:"c", 16:"idem", 18:"batch", 24:"t"}
    let spec = "ac010102617303781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a763104666e6f64652d3905477b2261223a317d06fb40040000000000000b63746f6b0d50000102030405060708090a0b0c0d0e0f0f616310646964656d1265626174636818186174";
    let call = Call::decode(&bytes(spec)).unwrap();
    assert_eq!(call.protocol_version, Some(1));
    assert_eq!(call.provider_id.as_deref(), Some("node-9"));
    assert_eq!(call.payload, json!({"a": 1}));
    assert_eq!(call.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(call.auth_token.as_ref().map(Secret::expose), Some("tok"));
    let expected_trace: Vec<u8> = (0..16).collect();
    assert_eq!(call.trace_id.map(|t| t.to_vec()), Some(expected_trace));
    assert_eq!(call.idempotency_key.as_deref(), Some("idem"));
    assert_eq!(call.qos.as_deref(), Some("batch"));
}

/// The relay's CALL: `{15 call_id, 5: bytes of the JSON task envelope}`.
#[test]
fn decodes_the_relay_call() {
    let hex = "a205583a7b227461736b5f6964223a20227439222c2022696e74656e74223a202275726e3a696963703a696e74656e743a6c6c6d3a636861743a7631227d0f626339";
    let call = Call::decode(&bytes(hex)).unwrap();
    assert_eq!(call.call_id.as_deref(), Some("c9"));
    assert_eq!(call.payload, json!({"task_id": "t9", "intent": CHAT}));
}

#[test]
fn decodes_the_python_nodes_responses_in_every_layout() {
    // encode_lifecycle_response(status="partial", result={"delta":"he"}, tokens_used=3)
    let partial = "a8010102617303616304677061727469616c05a16564656c746162686507030cf40da4016174020203677061727469616c04f4";
    let Response::Spec(r) = Response::decode(&bytes(partial)).unwrap() else {
        panic!("not the spec layout")
    };
    assert_eq!(r.call_id.as_deref(), Some("c"));
    assert_eq!(r.status.as_deref(), Some("partial"));
    assert_eq!(r.result, Some(json!({"delta": "he"})));
    assert_eq!(r.tokens_used, Some(3));
    let l = r.lifecycle.clone().unwrap();
    assert_eq!((l.task_id.as_deref(), l.sequence), (Some("t"), 2));
    assert_eq!(l.event, LifecycleEvent::Partial);
    assert!(!r.is_final());

    // status="error" with error_code / error_message
    let failed = "a7010102617303616304656572726f7206a2016d6261636b656e645f6572726f720264626f6f6d0cf50da4016174020303666661696c656404f5";
    let r = Response::decode(&bytes(failed)).unwrap();
    assert!(r.is_final());
    assert_eq!(r.call_id(), Some("c"));
    let Response::Spec(r) = r else { panic!() };
    assert_eq!(r.lifecycle.unwrap().event, LifecycleEvent::Failed);
    assert_eq!(
        r.error,
        Some(SpecError {
            code: s("backend_error"),
            message: s("boom")
        })
    );

    // encode_response("s", call_id="c", result=cbor2.dumps({"output":"hello","n":1}))
    let buffered = "a30261730551a2666f75747075746568656c6c6f616e010f6163";
    let Response::Buffered(r) = Response::decode(&bytes(buffered)).unwrap() else {
        panic!("not buffered")
    };
    assert_eq!(r.call_id.as_deref(), Some("c"));
    assert_eq!(r.result, Some(json!({"output": "hello", "n": 1})));
    assert_eq!(r.encoding, ResultEncoding::CborBytes);

    // encode_response("s", error_code=503, error_message="busy")
    let error = "a302617318641901f718656462757379";
    assert_eq!(
        Response::decode(&bytes(error)).unwrap(),
        Response::Error(BufferedError {
            code: 503,
            message: s("busy"),
            error: None,
            session_id: s("s"),
            call_id: None,
        })
    );

    // The relay worker's answer: key 5 holds JSON.
    let relay = "a20f6263390558277b22737461747573223a2022636f6d706c65746564222c2022726573756c74223a20226f6b227d";
    let Response::Buffered(r) = Response::decode(&bytes(relay)).unwrap() else {
        panic!("not buffered")
    };
    assert_eq!(r.encoding, ResultEncoding::JsonBytes);
    assert_eq!(
        r.result,
        Some(json!({"status": "completed", "result": "ok"}))
    );

    // encode_discover_response("s", CHAT, [{"node_id":"n1","load":0.5}])
    let discover = "a302617303781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76311481a2646c6f6164f93800676e6f64655f6964626e31";
    let Response::Discover(r) = Response::decode(&bytes(discover)).unwrap() else {
        panic!("not a discover reply")
    };
    assert_eq!(r.intent.as_deref(), Some(CHAT));
    assert_eq!(r.nodes, vec![json!({"node_id": "n1", "load": 0.5})]);
}

#[test]
fn decodes_discover_in_both_layouts_and_the_small_messages() {
    let code = "a202617303781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a7631";
    assert_eq!(
        Discover::decode(&bytes(code)).unwrap(),
        Discover::Session {
            session_id: s("s"),
            intent: s(CHAT)
        }
    );
    let spec = "a501781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a76310205036765752d776573740482626e31626e3205fb3fe0000000000000";
    let d = Discover::decode(&bytes(spec)).unwrap();
    assert_eq!(d.intent(), Some(CHAT));
    assert_eq!(
        d,
        Discover::Query(DiscoverQuery {
            intent: s(CHAT),
            limit: Some(5),
            region: s("eu-west"),
            exclude: Some(vec!["n1".into(), "n2".into()]),
            min_score: Some(0.5),
        })
    );
    assert_eq!(
        Init::decode(&bytes("a10101")).unwrap(),
        Init::with_version(1)
    );
    assert_eq!(
        Echo::decode(&bytes("a10143616263"))
            .unwrap()
            .echo
            .as_deref(),
        Some(&b"abc"[..])
    );
    // Empty PING map and the empty CLOSE payload the reference client sends.
    assert_eq!(Echo::decode(&bytes("a0")).unwrap(), Echo::default());
    assert_eq!(Close::decode(&[]).unwrap(), Close::default());
    // A duplicated key reads as its last occurrence, as a dict would keep it.
    let dup = Ack::decode(&bytes("a201010102")).unwrap();
    assert_eq!(dup.version, Some(2));
}

// ---- deterministic output ----------------------------------------------------

/// Expected bytes are `cbor2.dumps(…, canonical=True)` of the same maps.
#[test]
fn output_is_canonical_cbor_byte_for_byte() {
    let call = Call {
        payload: json!({"messages": [{"role": "user", "content": "hi"}]}),
        timeout: Some(Duration::from_secs(30)),
        trace_id: Some(std::array::from_fn(|i| i as u8)),
        protocol_version: None,
        provider_id: None,
        ..full_call()
    };
    assert_eq!(
        hex::encode(call.encode()),
        "aa0266736573732d3103781b75726e3a696963703a696e74656e743a6c6c6d3a636861743a763105582d7b226d65737361676573223a5b7b22636f6e74656e74223a226869222c22726f6c65223a2275736572227d5d7d06181e0b63746f6b0d50000102030405060708090a0b0c0d0e0f0f6663616c6c2d3110666964656d2d31126b696e7465726163746976651818667461736b2d31"
    );

    let mut partial = step(LifecycleEvent::Partial, 2);
    partial.result = Some(json!({"delta": "he", "z": [1.5, -2], "index": 0}));
    partial.tokens_used = Some(3);
    assert_eq!(
        hex::encode(Response::Spec(partial).encode()),
        "a8010102617303616304677061727469616c05a3617a82f93e00216564656c746162686565696e6465780007030cf40da4016174020203677061727469616c04f4"
    );

    let init = Init {
        version: Some(2),
        min_version: Some(1),
        node_id: s("node-a"),
        node_token: Some(Secret::new("tok")),
        capabilities: Some(json!(["llm:chat"])),
        compression: Some(vec!["gzip".into()]),
        max_frame_size: Some(1 << 20),
    };
    assert_eq!(
        hex::encode(init.encode()),
        "a70102020103666e6f64652d610463746f6b0581686c6c6d3a63686174068164677a6970071a00100000"
    );
    // What the peers send and expect for the handshake.
    assert_eq!(hex::encode(Init::with_version(1).encode()), "a10101");
    assert_eq!(hex::encode(Echo::default().encode()), "a0");
}
