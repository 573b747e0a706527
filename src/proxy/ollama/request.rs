//! An Ollama `/api/chat` or `/api/generate` body as a chat task.
//!
//! Order of checks: the body is a JSON object; `stream` is a boolean
//! (absent means TRUE, as in Ollama); `model` is a string (`auto`, `iicp`
//! or none means any model); then the messages (chat) or the prompt and
//! system (generate); then `options`, `format` and `tools`. Each failure is
//! Ollama's 400 `{"error": "…"}`.
//!
//! The translation to an OpenAI chat payload:
//! - a message's `images` (base64, as Ollama sends them) become
//!   `image_url` parts holding a data URL, after a `text` part with the
//!   content; the media type is read from the image's first bytes (PNG,
//!   JPEG, GIF, WebP; JPEG otherwise); a string that is already a data URL
//!   is kept;
//! - an assistant message's `tool_calls` (arguments as an object) become
//!   OpenAI's (arguments as a JSON string, with an id); a tool message's
//!   `tool_name` becomes `name`;
//! - `options`: `temperature`, `top_p`, `seed`, `stop` (a string or a
//!   list), `frequency_penalty`, `presence_penalty` keep their names;
//!   `num_predict` > 0 is `max_tokens` (Ollama's -1 "no limit" and -2
//!   "fill the context" are no limit); options OpenAI has no field for
//!   (`num_ctx`, `top_k`, `repeat_penalty`, `mirostat`…) are dropped;
//! - `format: "json"` is `response_format: {"type":"json_object"}`, a
//!   schema object is `{"type":"json_schema","json_schema":{"name":
//!   "response","schema":…}}`, `""` is none;
//! - `tools` pass as they are (Ollama's tool definitions are OpenAI's);
//! - `keep_alive`, `think`, `raw`, `template`, `context`, `suffix` and
//!   `truncate` are dropped.
//!
//! A chat without messages, or a generate with an empty prompt, is
//! Ollama's "load the model" call: [`Call::task`] is `None` and the mesh is
//! not asked.

use crate::proxy::dialect::{Dialect, ProxyError};
use crate::proxy::task::{flag, json_object, take_model, task};
use crate::server::request::{BodyError, RawBody};
use crate::wire::{IntentUrn, TaskRequest};
use serde_json::{Map, Value, json};

const D: Dialect = Dialect::Ollama;

/// A decoded chat or generate request.
#[derive(Debug)]
pub(crate) struct Call {
    /// The chat task; `None` for a "load the model" call.
    pub task: Option<TaskRequest>,
    /// The model to route by (`None`: any).
    pub model: Option<String>,
    /// The name the caller gave, echoed in the answer's `model` when the
    /// mesh's answer names none.
    pub name: String,
    /// NDJSON lines (the default) or one object.
    pub stream: bool,
}

/// Decodes `POST /api/chat`.
pub(crate) fn chat(body: Result<RawBody, BodyError>) -> Result<Call, ProxyError> {
    let mut body = json_object(D, body)?;
    let (stream, name, model) = common(&mut body)?;
    let messages = match body.get("messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().map(message).collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(D.invalid("`messages` must be an array")),
    };
    let task = if messages.is_empty() {
        None
    } else {
        Some(chat_task(messages, &body, model.clone())?)
    };
    Ok(Call {
        task,
        model,
        name,
        stream,
    })
}

/// Decodes `POST /api/generate`: `system` and `prompt` (with `images`) as
/// a system and a user message.
pub(crate) fn generate(body: Result<RawBody, BodyError>) -> Result<Call, ProxyError> {
    let mut body = json_object(D, body)?;
    let (stream, name, model) = common(&mut body)?;
    let prompt = optional_str(&body, "prompt")?.unwrap_or_default();
    let system = optional_str(&body, "system")?.unwrap_or_default();
    let task = if prompt.is_empty() {
        None
    } else {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        let images = images(body.get("images"))?;
        messages.push(json!({"role": "user", "content": content(prompt, images)}));
        Some(chat_task(messages, &body, model.clone())?)
    };
    Ok(Call {
        task,
        model,
        name,
        stream,
    })
}

/// `stream` (default true), the name as given, the model to route by.
fn common(body: &mut Map<String, Value>) -> Result<(bool, String, Option<String>), ProxyError> {
    let stream = flag(D, body, "stream", true)?;
    let name = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let model = take_model(D, body)?;
    Ok((stream, name, model))
}

/// The chat task for `messages`, with the request's options, format and
/// tools.
fn chat_task(
    messages: Vec<Value>,
    body: &Map<String, Value>,
    model: Option<String>,
) -> Result<TaskRequest, ProxyError> {
    let mut payload = Map::new();
    payload.insert("messages".into(), Value::Array(messages));
    if let Some(m) = &model {
        payload.insert("model".into(), Value::String(m.clone()));
    }
    let max_tokens = options(body.get("options"), &mut payload)?;
    if let Some(format) = response_format(body.get("format"))? {
        payload.insert("response_format".into(), format);
    }
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(t)) if t.is_empty() => {}
        Some(tools @ Value::Array(_)) => {
            payload.insert("tools".into(), tools.clone());
        }
        Some(_) => return Err(D.invalid("`tools` must be an array")),
    }
    Ok(task(IntentUrn::LLM_CHAT_V1, payload, model, max_tokens))
}

/// A string field that may be absent.
fn optional_str(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ProxyError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(D.invalid(format!("`{field}` must be a string"))),
    }
}

/// One Ollama message as an OpenAI one.
fn message(m: &Value) -> Result<Value, ProxyError> {
    let Some(m) = m.as_object() else {
        return Err(D.invalid("each message must be an object"));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) if !r.is_empty() => r.clone(),
        _ => return Err(D.invalid("each message needs a `role` string")),
    };
    let text = optional_str(m, "content")
        .map_err(|_| D.invalid("a message's `content` must be a string"))?
        .unwrap_or_default();
    let images = images(m.get("images"))?;
    let mut out = Map::new();
    out.insert("role".into(), Value::String(role));
    out.insert("content".into(), content(text, images));
    match m.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            out.insert("tool_calls".into(), Value::Array(tool_calls(calls)?));
        }
        Some(_) => return Err(D.invalid("a message's `tool_calls` must be an array")),
    }
    if let Some(name) = optional_str(m, "tool_name")
        .map_err(|_| D.invalid("a message's `tool_name` must be a string"))?
    {
        out.insert("name".into(), Value::String(name));
    }
    Ok(Value::Object(out))
}

/// Ollama tool calls (`{"function":{"name","arguments":{…}}}`) as
/// OpenAI's (`{"id","type":"function","function":{"name","arguments":"…"}}`).
fn tool_calls(calls: &[Value]) -> Result<Vec<Value>, ProxyError> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let f = call.get("function").and_then(Value::as_object);
            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
            let (Some(f), Some(name)) = (f, name) else {
                return Err(D.invalid("a tool call needs `function.name`"));
            };
            let arguments = match f.get("arguments") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("call_{i}"), str::to_owned);
            Ok(json!({"id": id, "type": "function",
                      "function": {"name": name, "arguments": arguments}}))
        })
        .collect()
}

/// The `images` of a message or a generate request, as data URLs.
fn images(field: Option<&Value>) -> Result<Vec<String>, ProxyError> {
    match field {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|i| match i {
                Value::String(s) if s.starts_with("data:") => Ok(s.clone()),
                Value::String(s) if !s.is_empty() => {
                    Ok(format!("data:{};base64,{s}", media_type(s)))
                }
                _ => Err(D.invalid("`images` must be base64 strings")),
            })
            .collect(),
        Some(_) => Err(D.invalid("`images` must be an array of base64 strings")),
    }
}

/// An image's media type, from the base64 of its first bytes.
fn media_type(base64: &str) -> &'static str {
    const KNOWN: [(&str, &str); 4] = [
        ("iVBORw0KGgo", "image/png"),
        ("/9j/", "image/jpeg"),
        ("R0lGOD", "image/gif"),
        ("UklGR", "image/webp"),
    ];
    KNOWN
        .iter()
        .find(|(prefix, _)| base64.starts_with(prefix))
        .map_or("image/jpeg", |(_, t)| t)
}

/// Text alone, or a text part followed by one `image_url` part per image.
fn content(text: String, images: Vec<String>) -> Value {
    if images.is_empty() {
        return Value::String(text);
    }
    let mut parts = vec![json!({"type": "text", "text": text})];
    parts.extend(
        images
            .into_iter()
            .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
    );
    Value::Array(parts)
}

/// Copies the `options` OpenAI has into `payload`; returns `max_tokens`.
fn options(
    options: Option<&Value>,
    payload: &mut Map<String, Value>,
) -> Result<Option<u64>, ProxyError> {
    let options = match options {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(D.invalid("`options` must be an object")),
    };
    for name in [
        "temperature",
        "top_p",
        "frequency_penalty",
        "presence_penalty",
    ] {
        match options.get(name) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                payload.insert(name.into(), v.clone());
            }
            Some(_) => return Err(D.invalid(format!("`options.{name}` must be a number"))),
        }
    }
    match options.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_i64() || v.is_u64() => {
            payload.insert("seed".into(), v.clone());
        }
        Some(_) => return Err(D.invalid("`options.seed` must be an integer")),
    }
    match options.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            payload.insert("stop".into(), json!([s]));
        }
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            if !list.is_empty() {
                payload.insert("stop".into(), Value::Array(list.clone()));
            }
        }
        Some(_) => return Err(D.invalid("`options.stop` must be a string or a list of strings")),
    }
    let max_tokens = match options.get("num_predict") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n > 0 => Some(n as u64),
            Some(_) => None,
            None => return Err(D.invalid("`options.num_predict` must be an integer")),
        },
    };
    if let Some(n) = max_tokens {
        payload.insert("max_tokens".into(), n.into());
    }
    Ok(max_tokens)
}

/// Ollama's `format` as OpenAI's `response_format`.
fn response_format(format: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(json!({"type": "json_object"}))),
        Some(schema @ Value::Object(_)) => Ok(Some(json!({
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        }))),
        Some(_) => Err(D.invalid("`format` must be \"json\" or a JSON schema object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Result<RawBody, BodyError> {
        Ok(RawBody(serde_json::to_vec(&v).unwrap().into()))
    }

    fn payload(call: &Call) -> &Value {
        &call.task.as_ref().expect("a task").payload
    }

    #[test]
    fn chat_defaults_to_streaming_and_translates_options() {
        let call = chat(raw(json!({
            "model": "llama3.2",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 64,
                        "stop": "END", "seed": 7, "num_ctx": 4096, "top_k": 40},
            "keep_alive": "5m",
            "think": false,
        })))
        .unwrap();
        assert!(call.stream);
        assert_eq!(call.model.as_deref(), Some("llama3.2"));
        let task = call.task.as_ref().unwrap();
        assert_eq!(task.intent, IntentUrn::LLM_CHAT_V1);
        assert_eq!(
            task.constraints.as_ref().unwrap().max_tokens,
            Some(64),
            "num_predict caps the task"
        );
        assert_eq!(
            task.payload,
            json!({"messages": [{"role": "user", "content": "hi"}], "model": "llama3.2",
                   "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"],
                   "max_tokens": 64})
        );
    }

    #[test]
    fn no_limit_num_predict_and_stream_false() {
        for n in [-1, -2, 0] {
            let call = chat(raw(json!({"model": "auto", "stream": false,
                "messages": [{"role": "user", "content": "x"}], "options": {"num_predict": n}})))
            .unwrap();
            assert!(!call.stream);
            assert_eq!(call.model, None);
            assert_eq!(call.name, "auto");
            assert!(payload(&call).get("max_tokens").is_none(), "{n}");
            assert!(payload(&call).get("model").is_none());
        }
    }

    #[test]
    fn images_become_data_url_parts() {
        let png = "iVBORw0KGgoAAAANSUhEUg==";
        let call = chat(raw(json!({"model": "llava", "messages": [
            {"role": "user", "content": "what is this?", "images": [png, "/9j/4AAQ", "AAAA"]}
        ]})))
        .unwrap();
        assert_eq!(
            payload(&call)["messages"][0]["content"],
            json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
            ])
        );
    }

    #[test]
    fn formats() {
        assert_eq!(response_format(Some(&json!(""))).unwrap(), None);
        assert_eq!(
            response_format(Some(&json!("json"))).unwrap(),
            Some(json!({"type": "json_object"}))
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(
            response_format(Some(&schema)).unwrap(),
            Some(
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}})
            )
        );
        assert!(response_format(Some(&json!("yaml"))).is_err());
        assert!(response_format(Some(&json!(3))).is_err());
    }

    #[test]
    fn tool_calls_and_tool_results_translate() {
        let call = chat(raw(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "content": "cold", "tool_name": "get_weather"},
        ], "tools": [{"type": "function", "function": {"name": "get_weather"}}]})))
        .unwrap();
        let p = payload(&call);
        assert_eq!(
            p["messages"][1]["tool_calls"],
            json!([{"id": "call_0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}])
        );
        assert_eq!(p["messages"][2]["name"], "get_weather");
        assert_eq!(p["tools"][0]["function"]["name"], "get_weather");
    }

    #[test]
    fn generate_is_a_system_and_a_user_message() {
        let call = generate(raw(
            json!({"model": "m", "prompt": "why?", "system": "be brief",
            "raw": true, "images": ["R0lGODlh"], "format": "json", "stream": false}),
        ))
        .unwrap();
        assert!(!call.stream);
        assert_eq!(
            payload(&call)["messages"],
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "why?"},
                    {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}}]},
            ])
        );
        assert_eq!(payload(&call)["response_format"]["type"], "json_object");
    }

    #[test]
    fn load_calls_have_no_task() {
        assert!(generate(raw(json!({"model": "m"}))).unwrap().task.is_none());
        assert!(
            generate(raw(json!({"model": "m", "prompt": ""})))
                .unwrap()
                .task
                .is_none()
        );
        assert!(chat(raw(json!({"model": "m"}))).unwrap().task.is_none());
        assert!(
            chat(raw(json!({"model": "m", "messages": []})))
                .unwrap()
                .task
                .is_none()
        );
    }

    #[test]
    fn bad_requests_are_400() {
        let m = json!([{"role": "user", "content": "x"}]);
        let cases = [
            json!({"messages": m, "stream": "yes"}),
            json!({"messages": m, "model": 3}),
            json!({"messages": "hi"}),
            json!({"messages": [{"content": "x"}]}),
            json!({"messages": [{"role": "user", "content": 5}]}),
            json!({"messages": [{"role": "user", "content": "x", "images": "abc"}]}),
            json!({"messages": [{"role": "user", "content": "x", "images": [1]}]}),
            json!({"messages": m, "options": []}),
            json!({"messages": m, "options": {"temperature": "hot"}}),
            json!({"messages": m, "options": {"num_predict": 1.5}}),
            json!({"messages": m, "options": {"stop": [1]}}),
            json!({"messages": m, "options": {"seed": "s"}}),
            json!({"messages": m, "format": "xml"}),
            json!({"messages": m, "tools": {}}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]}),
        ];
        for body in cases {
            let e = chat(raw(body.clone())).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.body()["error"].is_string(), "{body}");
        }
        for body in [json!({"prompt": 1}), json!({"prompt": "x", "system": []})] {
            assert_eq!(
                generate(raw(body.clone())).unwrap_err().status(),
                400,
                "{body}"
            );
        }
    }
}
