//! `iicp-node proxy`, Ollama dialect, over raw HTTP against the real binary
//! in front of a local mesh: chat streamed by default (NDJSON) and with
//! `stream: false`, generate, the load call, images, tags and version,
//! errors in Ollama's `{"error"}` shape, and the proxy's `/metrics`.

mod common;

use common::proxy::ProxyMesh;
use serde_json::{Value, json};

/// Status, content type, body.
async fn post(url: String, body: Value) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The text of NDJSON lines, and the last line, which must be the only
/// `done: true` one.
fn reassemble(lines: &[Value], field: &str) -> (String, Value) {
    let (last, pieces) = lines.split_last().expect("at least one line");
    assert_eq!(last["done"], true, "{last}");
    assert!(pieces.iter().all(|l| l["done"] == false), "{lines:?}");
    let text = pieces
        .iter()
        .map(|l| {
            if field == "message" {
                assert_eq!(l["message"]["role"], "assistant");
                l["message"]["content"].as_str().unwrap().to_owned()
            } else {
                l[field].as_str().unwrap().to_owned()
            }
        })
        .collect();
    (text, last.clone())
}

fn assert_final(last: &Value) {
    assert_eq!(last["done_reason"], "stop", "{last}");
    for f in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(last[f].is_u64(), "{f} in {last}");
    }
    assert!(last["eval_count"].as_u64().unwrap() > 0, "{last}");
    let created = last["created_at"].as_str().unwrap();
    assert!(created.len() >= 20 && created.ends_with('Z'), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_by_default_and_answers_once_without_stream() {
    // A node without a CX key and a plaintext-allowing proxy: the node's
    // native endpoint streams word by word (with the iicp-tcp feature).
    let mesh = ProxyMesh::echo(&["--no-cx"], &["--allow-plaintext"]).await;
    let base = mesh.proxy.base();
    let messages = json!([{"role": "user", "content": "hello ollama mesh"}]);

    let (status, ct, body) = post(
        format!("{base}/api/chat"),
        json!({"model": "echo", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "application/x-ndjson");
    let l = lines(&body);
    // Without the native transport the answer is one buffered piece.
    let pieces = if cfg!(feature = "iicp-tcp") { 3 } else { 2 };
    assert!(l.len() >= pieces, "streamed in pieces: {body}");
    let (text, last) = reassemble(&l, "message");
    assert_eq!(text, "echo: hello ollama mesh");
    assert_eq!(last["message"]["content"], "");
    assert_eq!(last["model"], "echo");
    assert_final(&last);

    let (status, ct, body) = post(
        format!("{base}/api/chat"),
        json!({"model": "auto", "stream": false, "messages": messages,
               "options": {"temperature": 0, "num_predict": 50}, "keep_alive": "5m"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        json!({"role": "assistant", "content": "echo: hello ollama mesh"})
    );
    assert_eq!(v["done"], true);
    assert_eq!(v["model"], "echo");
    assert_final(&v);

    // Images become image_url parts; the echo backend answers the text
    // part, so the translated message reached the node intact.
    let (status, _, body) = post(
        format!("{base}/api/chat"),
        json!({"model": "echo", "stream": false, "messages": [
            {"role": "user", "content": "what is this", "images": ["iVBORw0KGgoAAAANSUhEUg=="]}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["message"]["content"], "echo: what is this");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_tags_version_and_the_load_call() {
    // CX-sealed (the default): a stream is one buffered piece, then done.
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let base = mesh.proxy.base();

    let (status, ct, body) = post(
        format!("{base}/api/generate"),
        json!({"model": "echo", "prompt": "why is the sky blue", "system": "be brief", "raw": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "application/x-ndjson");
    let (text, last) = reassemble(&lines(&body), "response");
    assert_eq!(text, "echo: why is the sky blue");
    assert_eq!(last["response"], "");
    assert!(last.get("message").is_none());
    assert_final(&last);

    let (status, _, body) = post(
        format!("{base}/api/generate"),
        json!({"model": "echo", "prompt": "once", "stream": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["response"], "echo: once");
    assert_final(&v);

    // An empty prompt loads the model: answered without the mesh, so even
    // a model no node serves gets done:true.
    for stream in [true, false] {
        let (status, _, body) = post(
            format!("{base}/api/generate"),
            json!({"model": "nobody-serves-this", "stream": stream}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v = lines(&body).remove(0);
        assert_eq!(v["done"], true);
        assert_eq!(v["response"], "");
        assert_eq!(v["done_reason"], "load");
    }

    let tags: Value = reqwest::get(format!("{base}/api/tags"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let echo = &tags["models"][0];
    assert_eq!(echo["name"], "echo", "{tags}");
    assert_eq!(echo["model"], "echo");
    assert_eq!(echo["size"], 0);
    assert_eq!(echo["digest"].as_str().unwrap().len(), 64);
    assert!(echo["modified_at"].is_string());
    assert!(echo["details"]["families"].is_array());

    let v: Value = reqwest::get(format!("{base}/api/version"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["version"].as_str().unwrap().contains("iicp"), "{v}");
    let root = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(root.text().await.unwrap(), "Ollama is running");

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"dialect="ollama",endpoint="completion",outcome="success""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dialect="ollama",endpoint="models",outcome="success""#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_ollama_shape() {
    let mesh = ProxyMesh::echo(&[], &[]).await;
    let base = mesh.proxy.base();
    let hi = json!([{"role": "user", "content": "x"}]);
    let cases: Vec<(&str, &str, Value, u16)> = vec![
        (
            "a model no node serves (streamed: before the first line)",
            "/api/chat",
            json!({"model": "llama9", "messages": hi}),
            404,
        ),
        (
            "a model no node serves",
            "/api/chat",
            json!({"model": "llama9", "messages": hi, "stream": false}),
            404,
        ),
        (
            "generate, a model no node serves",
            "/api/generate",
            json!({"model": "llama9", "prompt": "x"}),
            404,
        ),
        (
            "stream is not a boolean",
            "/api/chat",
            json!({"model": "echo", "messages": hi, "stream": "no"}),
            400,
        ),
        (
            "messages is not an array",
            "/api/chat",
            json!({"model": "echo", "messages": "hi"}),
            400,
        ),
        (
            "an image that is not a string",
            "/api/chat",
            json!({"model": "echo", "messages": [{"role": "user", "content": "x", "images": [7]}]}),
            400,
        ),
        (
            "an unknown format",
            "/api/chat",
            json!({"model": "echo", "messages": hi, "format": "yaml"}),
            400,
        ),
        (
            "options is not an object",
            "/api/generate",
            json!({"model": "echo", "prompt": "x", "options": [1]}),
            400,
        ),
        (
            "embed without input",
            "/api/embed",
            json!({"model": "echo"}),
            400,
        ),
        (
            "embed on a mesh with no embedding node",
            "/api/embed",
            json!({"model": "auto", "input": "x"}),
            503,
        ),
        ("no such API", "/api/pull", json!({"model": "echo"}), 404),
    ];
    for (what, path, body, status) in cases {
        let (got, ct, text) = post(format!("{base}{path}"), body).await;
        assert_eq!(got, status, "{what}: {text}");
        assert!(ct.starts_with("application/json"), "{what}: {ct}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{what}: only `error`: {text}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}");
    }
    let r = reqwest::Client::new()
        .post(format!("{base}/api/chat"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string());

    let r = reqwest::get(format!("{base}/api/chat")).await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string());
}
