//! `POST /v1/completions`: one text-completion task. With `stream: true`
//! the whole completion comes as one SSE event and `[DONE]` (the mesh
//! streams chats, not completions).

use crate::client::complete::into_completion_response;
use crate::proxy::ProxyState;
use crate::proxy::answer;
use crate::proxy::dialect::Dialect;
use crate::proxy::events::sse;
use crate::proxy::metrics::{Endpoint, Outcome};
use crate::proxy::task::{count, flag, json_object, take_model, task, unix_now};
use crate::server::request::{BodyError, RawBody};
use crate::wire::IntentUrn;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

const D: Dialect = Dialect::OpenAi;

/// The handler.
pub(crate) async fn completions(
    State(st): State<Arc<ProxyState>>,
    body: Result<RawBody, BodyError>,
) -> Response {
    let timer = st.metrics.start(D, Endpoint::Completion);
    let decoded = (|| {
        let mut body = json_object(D, body)?;
        let stream = flag(D, &body, "stream", false)?;
        body.remove("stream");
        body.remove("stream_options");
        match body.get("prompt") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            _ => return Err(D.invalid("`prompt` must be a string or an array")),
        }
        let model = take_model(D, &mut body)?;
        let max_tokens = count(D, &body, "max_tokens")?;
        Ok((
            task(
                IntentUrn::LLM_COMPLETION_V1,
                body,
                model.clone(),
                max_tokens,
            ),
            model,
            stream,
        ))
    })();
    let (task, model, stream) = match decoded {
        Ok(d) => d,
        Err(e) => return answer::refused(timer, e),
    };
    let reply = st
        .client
        .submit_interactive(task, None)
        .await
        .and_then(into_completion_response);
    let mut reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            timer.finish(Outcome::MeshError);
            return D.mesh_error(&e, model.as_deref()).into_response();
        }
    };
    timer.finish(Outcome::Success);
    if reply.id.is_empty() {
        reply.id = format!("cmpl-{}", reply.task_id);
    }
    if reply.created == 0 {
        reply.created = unix_now();
    }
    if reply.model.is_empty() {
        reply.model = model.unwrap_or_default();
    }
    if reply.object.is_empty() {
        reply.object = "text_completion".into();
    }
    if !stream {
        return Json(reply).into_response();
    }
    let mut out = Vec::new();
    sse(&mut out, None, &reply);
    out.extend_from_slice(b"data: [DONE]\n\n");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::proxy::events::SSE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        out,
    )
        .into_response()
}
