//! OpenAI-compatible engines: `openai_compat` (Ollama, LM Studio, …), `vllm`
//! and `llamacpp` — the same API, different default ports (PROTOCOL.md §6).
//!
//! Intent → path: chat → `/chat/completions`, completion → `/completions`,
//! embedding → `/embeddings`, moderation → `/moderations`, transcription →
//! `/audio/transcriptions` (multipart, from base64 `payload.audio`), speech →
//! `/audio/speech` (binary answer returned as base64 `result.audio`). The
//! configured model fills in when the payload names none; `max_tokens`,
//! `max_completion_tokens`, `n` and `best_of` are lowered to the options'
//! limits (`limits.rs`); `Authorization: Bearer` is sent only when a key is set.

use super::Output;
use super::client::{BackendRequest, Target, parse_url};
use super::error::BackendError;
use super::http::{send, send_probe, send_streaming};
use super::limits::clamp_cost;
use super::multipart::Form;
use super::options::{BackendKind, BackendOptions};
use super::sse::SseStream;
use super::streaming::{drive, openai_step};
use crate::partials::PartialSink;
use crate::wire::BackendFlavour;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// What an intent becomes at an OpenAI-style server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// POST JSON to this path.
    Json {
        path: &'static str,
        needs_model: bool,
    },
    /// Multipart upload to `/audio/transcriptions`.
    Transcription,
    /// JSON to `/audio/speech`, binary answer.
    Speech,
}

/// The route for an intent, or `None` when the engine does not serve it.
pub(crate) fn route(intent: &str) -> Option<Route> {
    let action = intent.strip_prefix("urn:iicp:intent:")?;
    Some(match action {
        "llm:chat:v1" => Route::Json {
            path: "/chat/completions",
            needs_model: true,
        },
        "llm:completion:v1" => Route::Json {
            path: "/completions",
            needs_model: true,
        },
        "llm:embedding:v1" | "llm:embed:v1" => Route::Json {
            path: "/embeddings",
            needs_model: true,
        },
        "safety:moderate:v1" => Route::Json {
            path: "/moderations",
            needs_model: false,
        },
        "audio:transcribe:v1" => Route::Transcription,
        "audio:speech:v1" => Route::Speech,
        _ => return None,
    })
}

/// The payload with the configured model filled in when it names none.
pub(crate) fn with_model(
    payload: Value,
    model: Option<&str>,
    needs_model: bool,
) -> Result<Value, BackendError> {
    let mut body = match payload {
        Value::Object(_) => payload,
        Value::Null => json!({}),
        _ => {
            return Err(BackendError::InvalidRequest(
                "the payload must be a JSON object".into(),
            ));
        }
    };
    let named = body
        .get("model")
        .and_then(Value::as_str)
        .is_some_and(|m| !m.is_empty());
    if !named {
        match model {
            Some(m) => body["model"] = m.into(),
            None if needs_model => {
                return Err(BackendError::InvalidRequest(
                    "no model: the task names none and the node has no default model (--model)"
                        .into(),
                ));
            }
            None => {}
        }
    }
    Ok(body)
}

/// Every path an engine is called at; their URLs are parsed once, in
/// [`OpenAiCompat::new`], not per request (`/api/tags`, Ollama's, is relative
/// to the base without `/v1`).
const PATHS: [&str; 8] = [
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/moderations",
    "/audio/transcriptions",
    "/audio/speech",
    "/models",
    "/api/tags",
];

/// An OpenAI-compatible engine.
#[derive(Debug, Clone)]
pub struct OpenAiCompat {
    kind: BackendKind,
    base: String,
    opts: BackendOptions,
    /// `base` + each of [`PATHS`], parsed (an error where the base makes no
    /// valid URL: a request there fails with it when sent).
    urls: std::sync::Arc<[Result<std::sync::Arc<Target>, BackendError>]>,
}

impl OpenAiCompat {
    /// An engine of `kind` (any but `Anthropic`) with `opts`.
    pub fn new(kind: BackendKind, opts: BackendOptions) -> Self {
        let base = opts.base_for(kind);
        let urls = PATHS
            .iter()
            .map(|path| match *path {
                "/api/tags" => parse_url(&format!("{}/api/tags", base.trim_end_matches("/v1"))),
                _ => parse_url(&format!("{base}{path}")),
            })
            .collect();
        Self {
            base,
            kind,
            opts,
            urls,
        }
    }

    /// The engine kind.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    fn key(&self) -> Option<&str> {
        self.opts.api_key.as_ref().map(|k| k.expose())
    }

    /// A request to one of [`PATHS`], with the key as a bearer token.
    fn request(&self, method: http::Method, path: &'static str) -> BackendRequest {
        let uri = PATHS.iter().position(|p| *p == path).map_or_else(
            || parse_url(&format!("{}{path}", self.base)),
            |i| self.urls[i].clone(),
        );
        let req = BackendRequest::new(method, uri, self.opts.timeout);
        match self.key() {
            Some(key) => req.bearer(key),
            None => req,
        }
    }

    /// Runs one task; returns the upstream JSON as the result. The cost
    /// fields of the payload are first lowered to the options' limits.
    pub async fn invoke(&self, intent: &str, payload: &Value) -> Result<Value, BackendError> {
        self.invoke_output(intent, payload.clone())
            .await?
            .into_value()
    }

    /// [`invoke`](Self::invoke) on a payload given away (not copied); a
    /// JSON answer comes back as the text the server sent
    /// ([`Output::Json`], unread).
    pub async fn invoke_output(
        &self,
        intent: &str,
        payload: Value,
    ) -> Result<Output, BackendError> {
        let route = route(intent).ok_or_else(|| BackendError::Unsupported(intent.to_owned()))?;
        let needs_model = match route {
            Route::Json { needs_model, .. } => needs_model,
            Route::Speech | Route::Transcription => true,
        };
        let mut body = with_model(payload, self.opts.model.as_deref(), needs_model)?;
        clamp_cost(&mut body, self.opts.limits())?;
        // The node decides whether to stream (by how the consumer asked),
        // not the payload: a buffered call reads one JSON answer.
        if let Some(obj) = body.as_object_mut() {
            obj.remove("stream");
            obj.remove("stream_options");
        }
        match route {
            Route::Json { path, .. } => {
                let resp = send(
                    self.request(http::Method::POST, path).json(&body),
                    self.key(),
                )
                .await?;
                Ok(Output::Json(resp.into_body()))
            }
            Route::Speech => {
                let resp = send(
                    self.request(http::Method::POST, "/audio/speech")
                        .json(&body),
                    self.key(),
                )
                .await?;
                let content_type = resp.content_type().unwrap_or("audio/mpeg").to_owned();
                Ok(Output::Value(
                    json!({"audio": B64.encode(resp.bytes()), "content_type": content_type}),
                ))
            }
            Route::Transcription => {
                let (content_type, form) = transcription_form(&body)?;
                let resp = send(
                    self.request(http::Method::POST, "/audio/transcriptions")
                        .body(content_type, form),
                    self.key(),
                )
                .await?;
                resp.json().map(Output::Value)
            }
        }
    }

    /// Runs one task, streaming when it is a chat: the server is asked for
    /// `stream: true` (with `stream_options.include_usage`), its chunks go
    /// to `partials` (grouped, see `chat_stream.rs`) and the whole answer is
    /// returned as `chat.completion`, as [`invoke`](Self::invoke) returns
    /// it. Other intents are invoked without partials.
    pub async fn invoke_streaming(
        &self,
        intent: &str,
        payload: &Value,
        partials: &PartialSink,
    ) -> Result<Value, BackendError> {
        if intent != crate::wire::intent::LLM_CHAT_V1 {
            return self.invoke(intent, payload).await;
        }
        let mut body = with_model(payload.clone(), self.opts.model.as_deref(), true)?;
        clamp_cost(&mut body, self.opts.limits())?;
        body["stream"] = true.into();
        body["stream_options"] = json!({"include_usage": true});
        let resp = send_streaming(
            self.request(http::Method::POST, "/chat/completions")
                .json(&body),
            self.key(),
        )
        .await?;
        drive(SseStream::new(resp), partials, openai_step).await
    }

    /// Model ids the server lists (`GET /models`, then Ollama's `/api/tags`),
    /// and the engine flavour it reveals.
    pub async fn probe(&self) -> Result<(Vec<String>, BackendFlavour), BackendError> {
        let listed = send(self.request(http::Method::GET, "/models"), self.key()).await;
        match listed {
            Ok(resp) => {
                let server = resp
                    .header("server")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let body = resp.json()?;
                let entries = body
                    .get("data")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let ids = entries
                    .iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                let owners: Vec<&str> = entries
                    .iter()
                    .filter_map(|m| m.get("owned_by").and_then(Value::as_str))
                    .collect();
                let flavour = if owners.iter().any(|o| o.contains("vllm")) {
                    BackendFlavour::Vllm
                } else if server.contains("llama") || owners.iter().any(|o| o.contains("llamacpp"))
                {
                    BackendFlavour::Llamacpp
                } else if owners.contains(&"library") || self.ollama_tags().await.is_ok() {
                    BackendFlavour::Ollama
                } else {
                    self.kind_flavour()
                };
                Ok((ids, flavour))
            }
            Err(first) => match self.ollama_tags().await {
                Ok(ids) => Ok((ids, BackendFlavour::Ollama)),
                Err(_) => Err(first),
            },
        }
    }

    fn kind_flavour(&self) -> BackendFlavour {
        match self.kind {
            BackendKind::Vllm => BackendFlavour::Vllm,
            BackendKind::Llamacpp => BackendFlavour::Llamacpp,
            _ => BackendFlavour::Custom,
        }
    }

    /// Ollama's native model list at `{base without /v1}/api/tags`.
    async fn ollama_tags(&self) -> Result<Vec<String>, BackendError> {
        let body = send_probe(self.request(http::Method::GET, "/api/tags"), self.key())
            .await?
            .json()?;
        Ok(body
            .get("models")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        m.get("name")
                            .or_else(|| m.get("model"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The multipart form of a transcription: `file` from base64 `audio`, every
/// other string, number or boolean field as a text part; its content type
/// and body.
fn transcription_form(body: &Value) -> Result<(http::HeaderValue, bytes::Bytes), BackendError> {
    let audio = body.get("audio").and_then(Value::as_str).ok_or_else(|| {
        BackendError::InvalidRequest("a transcription needs base64 `audio`".into())
    })?;
    let bytes = B64
        .decode(audio.trim())
        .map_err(|_| BackendError::InvalidRequest("`audio` is not valid base64".into()))?;
    let filename = body
        .get("filename")
        .and_then(Value::as_str)
        .unwrap_or("audio.wav");
    let mut form = Form::new().file("file", filename, &bytes)?;
    for (k, v) in body.as_object().into_iter().flatten() {
        if k == "audio" || k == "filename" {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        form = form.text(k, &text)?;
    }
    Ok(form.finish())
}

/// The seed's helper: runs one task against an OpenAI-compatible server and
/// returns the consumer envelope `{"result": …}`; errors are strings
/// (`openai_compat::invoke(&opts, &req.intent, &req.payload)`).
pub async fn invoke(opts: &BackendOptions, intent: &str, payload: &Value) -> Result<Value, String> {
    OpenAiCompat::new(BackendKind::OpenaiCompat, opts.clone())
        .invoke(intent, payload)
        .await
        .map(|result| json!({ "result": result }))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_intent() {
        assert_eq!(
            route("urn:iicp:intent:llm:chat:v1"),
            Some(Route::Json {
                path: "/chat/completions",
                needs_model: true
            })
        );
        assert_eq!(
            route("urn:iicp:intent:safety:moderate:v1"),
            Some(Route::Json {
                path: "/moderations",
                needs_model: false
            })
        );
        assert_eq!(
            route("urn:iicp:intent:audio:speech:v1"),
            Some(Route::Speech)
        );
        assert_eq!(route("urn:iicp:intent:code:lint:v1"), None);
    }

    #[test]
    fn model_fill_in() {
        let p = json!({"messages": []});
        assert_eq!(
            with_model(p.clone(), Some("m"), true).unwrap()["model"],
            "m"
        );
        let named = json!({"model": "own", "messages": []});
        assert_eq!(with_model(named, Some("m"), true).unwrap()["model"], "own");
        assert!(matches!(
            with_model(p.clone(), None, true),
            Err(BackendError::InvalidRequest(_))
        ));
        assert!(
            with_model(p.clone(), None, false)
                .unwrap()
                .get("model")
                .is_none()
        );
        assert!(with_model(json!("text"), Some("m"), true).is_err());
    }
}
