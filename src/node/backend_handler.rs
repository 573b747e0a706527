//! A [`Backend`] as the node's task runner. The consumer writes the payload, but
//! the operator pays the model server, so before anything is sent:
//!
//! 1. `constraints.max_tokens` and `constraints.model` are copied into the
//!    payload when it has none (some clients send them only there,
//!    PROTOCOL.md §6), then the node's default model (its first model at
//!    start, so a node started without `--model` serves what it found);
//! 2. the model must be one the node advertises (or the default), else
//!    404 `IICP-E029` naming the models it serves;
//! 3. the cost fields are lowered to the node's limits (`max_tokens`,
//!    `max_completion_tokens`, `n`, `best_of`), and a backend that requires
//!    `max_tokens` (Anthropic) gets the limit when the task sets none.
//!
//! When the consumer asked for a streamed answer (the task context has a
//! partial sink) the backend streams from the model server and passes
//! pieces on as they come. Backend failures become error envelopes.

use super::handler::{HandlerError, TaskContext};
use super::models::AdvertisedModels;
use crate::backends::{Backend, BackendKind, CostLimits, Output, clamp_cost};
use crate::wire::TaskRequest;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) struct BackendHandler {
    pub backend: Arc<dyn Backend>,
    /// The node's first advertised model at start, used when a task names none.
    pub default_model: Option<String>,
    /// The models a task may name (besides the default).
    pub advertised: AdvertisedModels,
    /// The operator's cost limits.
    pub limits: CostLimits,
}

/// What the payload may ask of the backend.
pub(crate) struct Policy<'a> {
    pub default_model: Option<&'a str>,
    pub allowed: &'a [String],
    pub limits: CostLimits,
    /// Insert `max_tokens` when the task sets none.
    pub needs_max_tokens: bool,
}

/// The payload with execution constraints, then the default model, filled
/// in where it has no value (an empty `model` counts as none).
#[cfg(test)]
pub(crate) fn payload_with_constraints(task: &TaskRequest, default_model: Option<&str>) -> Value {
    fill_constraints(task.payload.clone(), task, default_model)
}

/// [`payload_with_constraints`] on a payload already taken out of `task`
/// (the handler owns the task: no copy of the payload).
fn fill_constraints(payload: Value, task: &TaskRequest, default_model: Option<&str>) -> Value {
    let mut payload = match payload {
        Value::Null => Value::Object(Map::new()),
        other => other,
    };
    if let Value::Object(obj) = &mut payload {
        if obj.get("model").and_then(Value::as_str) == Some("") {
            obj.remove("model");
        }
        if let Some(c) = &task.constraints {
            if let Some(n) = c.max_tokens {
                obj.entry("max_tokens").or_insert(n.into());
            }
            if let Some(m) = c.model.as_deref().filter(|m| !m.is_empty()) {
                obj.entry("model").or_insert(m.into());
            }
        }
        if let Some(m) = default_model {
            obj.entry("model").or_insert(m.into());
        }
    }
    payload
}

/// The payload to send for `task` under `policy`, or the refusal.
#[cfg(test)]
pub(crate) fn prepare(task: &TaskRequest, policy: &Policy<'_>) -> Result<Value, HandlerError> {
    prepare_payload(task.payload.clone(), task, policy)
}

/// [`prepare`] on `payload`, taken out of `task`.
fn prepare_payload(
    payload: Value,
    task: &TaskRequest,
    policy: &Policy<'_>,
) -> Result<Value, HandlerError> {
    let mut payload = fill_constraints(payload, task, policy.default_model);
    let Value::Object(obj) = &mut payload else {
        return Ok(payload); // the backend refuses a non-object payload
    };
    match obj.get("model") {
        None => {}
        Some(Value::String(m)) => {
            let served =
                policy.default_model == Some(m.as_str()) || policy.allowed.iter().any(|a| a == m);
            if !served {
                return Err(unknown_model(policy));
            }
        }
        Some(_) => return Err(HandlerError::invalid("`model` must be a string")),
    }
    if policy.needs_max_tokens && obj.get("max_tokens").is_none_or(Value::is_null) {
        obj.insert("max_tokens".into(), policy.limits.max_tokens.into());
    }
    clamp_cost(&mut payload, policy.limits).map_err(HandlerError::from)?;
    Ok(payload)
}

/// 404 `IICP-E029` naming the models served (they are public); the asked
/// name is not echoed.
fn unknown_model(policy: &Policy<'_>) -> HandlerError {
    let mut served: Vec<&str> = policy.allowed.iter().map(String::as_str).collect();
    if let Some(d) = policy.default_model.filter(|d| !served.contains(d)) {
        served.insert(0, d);
    }
    let message = if served.is_empty() {
        "this node serves no model right now".to_owned()
    } else {
        format!(
            "this node does not serve that model; it serves: {}",
            served.join(", ")
        )
    };
    HandlerError::new(404, "IICP-E029", message)
}

/// A task's result from the backend, as [`Backend::invoke_output`] gives it.
pub(crate) type OutputFuture = Pin<Box<dyn Future<Output = Result<Output, HandlerError>> + Send>>;

impl BackendHandler {
    /// Runs one task. A buffered answer may come back as the engine's JSON
    /// text ([`Output::Json`]); a streamed one is always a value.
    pub fn run(&self, mut task: TaskRequest, ctx: TaskContext) -> OutputFuture {
        let backend = self.backend.clone();
        let allowed = self.advertised.get();
        let policy = Policy {
            default_model: self.default_model.as_deref(),
            allowed: &allowed,
            limits: self.limits,
            needs_max_tokens: backend.kind() == BackendKind::Anthropic,
        };
        let payload = std::mem::take(&mut task.payload);
        let payload = prepare_payload(payload, &task, &policy);
        Box::pin(async move {
            let payload = payload?;
            let intent = task.intent.as_str();
            let result = match &ctx.partials {
                Some(partials) => backend
                    .invoke_streaming(intent, &payload, partials)
                    .await
                    .map(Output::Value),
                None => backend.invoke_output(intent, payload).await,
            };
            result.map_err(HandlerError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(v: Value) -> TaskRequest {
        let mut v = v;
        v["intent"] = json!("urn:iicp:intent:llm:chat:v1");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn constraints_then_the_default_model_fill_only_missing_fields() {
        let mut t = task(json!({
            "payload": {"messages": [], "model": "own"},
            "constraints": {"max_tokens": 16, "model": "other"}
        }));
        let p = payload_with_constraints(&t, Some("default"));
        assert_eq!(
            (p["max_tokens"].as_u64(), p["model"].as_str()),
            (Some(16), Some("own"))
        );
        t.payload = json!({"messages": []});
        assert_eq!(
            payload_with_constraints(&t, Some("default"))["model"],
            "other"
        );
        t.constraints = None;
        let p = payload_with_constraints(&t, Some("default"));
        assert!(p.get("max_tokens").is_none());
        assert_eq!(p["model"], "default");
        assert!(payload_with_constraints(&t, None).get("model").is_none());
        t.payload = json!({"model": ""});
        assert_eq!(
            payload_with_constraints(&t, Some("default"))["model"],
            "default"
        );
    }

    #[test]
    fn only_served_models_pass_and_costs_are_clamped() {
        let allowed = vec!["alpha".to_owned(), "beta".to_owned()];
        let policy = Policy {
            default_model: Some("alpha"),
            allowed: &allowed,
            limits: CostLimits {
                max_tokens: 100,
                max_choices: 1,
            },
            needs_max_tokens: false,
        };
        let p = prepare(
            &task(json!({"payload": {"model": "beta", "n": 3}})),
            &policy,
        )
        .unwrap();
        assert_eq!(
            (p["model"].as_str(), p["n"].as_u64()),
            (Some("beta"), Some(1))
        );
        let p = prepare(
            &task(json!({"payload": {}, "constraints": {"max_tokens": 1_000_000}})),
            &policy,
        )
        .unwrap();
        assert_eq!(
            (p["model"].as_str(), p["max_tokens"].as_u64()),
            (Some("alpha"), Some(100))
        );
        assert!(
            p.get("n").is_none(),
            "nothing added for OpenAI-style engines"
        );

        let e = prepare(
            &task(json!({"payload": {"model": "gpt-4-secret\n"}})),
            &policy,
        )
        .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "IICP-E029"));
        assert_eq!(
            e.message,
            "this node does not serve that model; it serves: alpha, beta"
        );
        let e = prepare(&task(json!({"payload": {"model": 7}})), &policy).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "validation_error"));
        let e = prepare(&task(json!({"payload": {"max_tokens": "9"}})), &policy).unwrap_err();
        assert_eq!(e.status, 400);

        let anthropic = Policy {
            needs_max_tokens: true,
            default_model: None,
            allowed: &[],
            ..policy
        };
        let p = prepare(&task(json!({"payload": {"messages": []}})), &anthropic).unwrap();
        assert_eq!(p["max_tokens"], 100);
        let e = prepare(&task(json!({"payload": {"model": "x"}})), &anthropic).unwrap_err();
        assert_eq!(e.message, "this node serves no model right now");
    }
}
