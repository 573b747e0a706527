//! [`Inbound`]: what a transport knows about a task besides the task itself,
//! and [`decode_task`], the one JSON decoding of a task, for every transport
//! that carries the task as JSON.

use super::answer::Answer;
use super::task_auth::Credentials;
use crate::partials::PartialSink;
use crate::server::request::decode_json;
use crate::wire::TaskRequest;
use std::net::SocketAddr;

/// The context a task arrived in, transport-neutral: each transport fills
/// it from its own fields (HTTP: headers and the socket peer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Inbound {
    /// Credentials presented outside the task body (`auth.node_token`
    /// stays in the body and is read there).
    pub credentials: Credentials,
    /// W3C trace context, handed to the handler in its `TaskContext`.
    pub traceparent: Option<String>,
    /// The connection's peer, when the transport has one (for logs).
    pub peer: Option<SocketAddr>,
    /// Where partial results go, when the transport streams this task's
    /// answer (a native lifecycle CALL).
    pub partials: Option<PartialSink>,
    /// The transport sends the answer as JSON text, so an engine's JSON
    /// answer may be relayed in it as it came (`AnswerBody::Relayed`).
    pub relay_text: bool,
}

/// A task from JSON bytes: malformed JSON is 400, a well-formed body that
/// is not a task (missing fields, wrong types, a bad intent URN) is 422,
/// both `validation_error` with a message that quotes no value.
pub(crate) fn decode_task(body: &[u8]) -> Result<TaskRequest, Answer> {
    decode_json(body)
        .map_err(|rejected| Answer::validation_error(rejected.status, rejected.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_refuses_with_400_or_422_and_quotes_no_value() {
        let refused = |bytes: &[u8]| decode_task(bytes).unwrap_err();
        let a = refused(b"{oops");
        assert_eq!((a.status, a.code()), (400, Some("validation_error")));
        let a = refused(br#"{"payload": {}}"#);
        assert_eq!((a.status, a.code()), (422, Some("validation_error")));
        assert!(a.message().unwrap().contains("missing field `intent`"));
        let a = refused(br#"{"intent": "urn:iicp:intent:llm:chat:v1", "task_id": 424242}"#);
        assert_eq!(a.status, 422);
        assert!(!a.message().unwrap().contains("424242"), "{a:?}");
        let task = decode_task(br#"{"intent": "urn:iicp:intent:llm:chat:v1", "payload": {}}"#)
            .expect("a task");
        assert_eq!(task.intent.as_str(), "urn:iicp:intent:llm:chat:v1");
    }
}
