//! A [`Backend`] as a task handler: the task's payload goes to the model
//! server, with `constraints.max_tokens` and `constraints.model` copied into
//! the payload when it has none (some clients send them only there,
//! PROTOCOL.md §6), and backend failures become error envelopes.

use super::handler::{HandlerError, HandlerFuture, TaskContext, TaskHandler};
use crate::backends::Backend;
use crate::wire::TaskRequest;
use serde_json::Value;
use std::sync::Arc;

pub(crate) struct BackendHandler(pub Arc<dyn Backend>);

/// The payload with execution constraints filled in where it has no value.
pub(crate) fn payload_with_constraints(task: &TaskRequest) -> Value {
    let mut payload = task.payload.clone();
    if let (Some(c), Value::Object(obj)) = (&task.constraints, &mut payload) {
        if let Some(n) = c.max_tokens {
            obj.entry("max_tokens").or_insert(n.into());
        }
        if let Some(m) = &c.model {
            obj.entry("model").or_insert(m.clone().into());
        }
    }
    payload
}

impl TaskHandler for BackendHandler {
    fn handle(&self, task: TaskRequest, _ctx: TaskContext) -> HandlerFuture {
        let backend = self.0.clone();
        Box::pin(async move {
            let payload = payload_with_constraints(&task);
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
    fn constraints_fill_only_missing_fields() {
        let mut t: TaskRequest = serde_json::from_value(json!({
            "intent": "urn:iicp:intent:llm:chat:v1",
            "payload": {"messages": [], "model": "own"},
            "constraints": {"max_tokens": 16, "model": "other"}
        }))
        .unwrap();
        let p = payload_with_constraints(&t);
        assert_eq!(
            (p["max_tokens"].as_u64(), p["model"].as_str()),
            (Some(16), Some("own"))
        );
        t.constraints = None;
        assert!(payload_with_constraints(&t).get("max_tokens").is_none());
    }
}
