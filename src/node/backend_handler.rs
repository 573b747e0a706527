//! A [`Backend`] as a task handler: the task's payload goes to the model
//! server, with `constraints.max_tokens` and `constraints.model` copied into
//! the payload when it has none (some clients send them only there,
//! PROTOCOL.md §6), then the node's first advertised model (so a node started
//! without `--model` serves what it found), and backend failures become
//! error envelopes.

use super::handler::{HandlerError, HandlerFuture, TaskContext, TaskHandler};
use crate::backends::Backend;
use crate::wire::TaskRequest;
use serde_json::Value;
use std::sync::Arc;

pub(crate) struct BackendHandler {
    pub backend: Arc<dyn Backend>,
    /// The node's first advertised model, used when a task names none.
    pub default_model: Option<String>,
}

/// The payload with execution constraints, then `default_model`, filled in
/// where it has no value.
pub(crate) fn payload_with_constraints(task: &TaskRequest, default_model: Option<&str>) -> Value {
    let mut payload = task.payload.clone();
    if let Value::Object(obj) = &mut payload {
        if let Some(c) = &task.constraints {
            if let Some(n) = c.max_tokens {
                obj.entry("max_tokens").or_insert(n.into());
            }
            if let Some(m) = &c.model {
                obj.entry("model").or_insert(m.clone().into());
            }
        }
        if let Some(m) = default_model {
            obj.entry("model").or_insert(m.into());
        }
    }
    payload
}

impl TaskHandler for BackendHandler {
    fn handle(&self, task: TaskRequest, _ctx: TaskContext) -> HandlerFuture {
        let backend = self.backend.clone();
        let default_model = self.default_model.clone();
        Box::pin(async move {
            let payload = payload_with_constraints(&task, default_model.as_deref());
            backend
                .invoke(&task.intent, &payload)
                .await
                .map_err(HandlerError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn constraints_then_the_default_model_fill_only_missing_fields() {
        let mut t: TaskRequest = serde_json::from_value(json!({
            "intent": "urn:iicp:intent:llm:chat:v1",
            "payload": {"messages": [], "model": "own"},
            "constraints": {"max_tokens": 16, "model": "other"}
        }))
        .unwrap();
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
    }
}
