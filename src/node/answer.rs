//! [`Answer`]: what the task pipeline gives back, typed. Each transport
//! renders it its own way (HTTP serialises it to JSON once; the native
//! transport builds its RESPONSE or `{100 code, 101 message}` from the same
//! value), so no transport re-parses another's bytes.

use crate::server::request::BodyError;
use crate::wire::{ErrorBody, TaskResponse};
use serde::Serialize;
use serde_json::Value;

/// The answer to one task: a status (HTTP's status code, which is also the
/// native error code), when to retry, and the body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// 200 for a success (also a sealed one), 4xx/5xx otherwise.
    pub status: u16,
    /// When a refused task may be retried, in seconds (HTTP `Retry-After`).
    pub retry_after_s: Option<u64>,
    /// The envelope or the refusal.
    pub body: AnswerBody,
}

/// What an [`Answer`] carries. It serialises to the JSON the HTTP route
/// sends: the envelope or the refusal itself, with no tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum AnswerBody {
    /// A task response (PROTOCOL.md §2.3): success, error or timeout
    /// envelope, or the sealed `encrypted` one. The handler ran (or was
    /// started).
    Envelope(Box<TaskResponse>),
    /// The task was refused before its handler ran:
    /// `{"error":{"code","message",…}}` with extra fields such as
    /// `retry_after_ms`, `qos_class` or `reason`.
    Refusal(ErrorBody),
    /// A success envelope whose `result` is an engine's JSON text, relayed
    /// as it came (checked by `relayed.rs`); `envelope.result` is `None`.
    /// Only HTTP is given one (`Inbound::relay_text`).
    #[serde(skip)]
    Relayed {
        envelope: Box<TaskResponse>,
        result: bytes::Bytes,
    },
}

impl Answer {
    /// A refusal with this status.
    pub fn refusal(status: u16, body: ErrorBody) -> Self {
        Self {
            status,
            retry_after_s: None,
            body: AnswerBody::Refusal(body),
        }
    }

    /// A task response with this status.
    pub fn envelope(status: u16, response: TaskResponse) -> Self {
        Self {
            status,
            retry_after_s: None,
            body: AnswerBody::Envelope(Box::new(response)),
        }
    }

    /// A `validation_error` refusal: 400 for bytes that are not a task at
    /// all, 422 for a task of the wrong shape (PROTOCOL.md §1.2).
    pub fn validation_error(status: u16, message: impl Into<String>) -> Self {
        Self::refusal(status, ErrorBody::new("validation_error", message))
    }

    /// 413 `payload_too_large`: a task over the `limit` (bytes) of the
    /// transport that read it (HTTP's body limit, the native frame limit).
    pub fn too_large(limit: usize) -> Self {
        let too_large = BodyError::TooLarge(Some(limit));
        Self::refusal(
            too_large.status(),
            ErrorBody::new(too_large.code(), too_large.message()),
        )
    }

    /// The same answer with a retry hint of `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The answer as the JSON the HTTP route sends, serialised once.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these types cannot fail (string keys, no foreign
        // `Serialize` impls); the fallback keeps an answer JSON regardless.
        // Sized for a typical envelope, so the buffer is not regrown while
        // it is written.
        let mut out = Vec::with_capacity(512);
        if let AnswerBody::Relayed { envelope, result } = &self.body {
            out.reserve(result.len());
            // `{"result":RESULT,` then the rest of the envelope after its `{`
            // (a task response always has `task_id` and `status`).
            out.extend_from_slice(b"{\"result\":");
            out.extend_from_slice(result);
            out.push(b',');
            let head = out.len();
            if serde_json::to_writer(&mut out, envelope).is_err() {
                return b"{}".to_vec();
            }
            out.remove(head);
            return out;
        }
        match serde_json::to_writer(&mut out, &self.body) {
            Ok(()) => out,
            Err(_) => b"{}".to_vec(),
        }
    }
}

/// What a transport other than HTTP reads to build its own answer (the
/// native adapter renders `{100 code, 101 message}` or a RESPONSE from
/// these without parsing JSON).
#[cfg_attr(not(test), allow(dead_code))]
impl Answer {
    /// The envelope, unless the task was refused.
    pub fn as_envelope(&self) -> Option<&TaskResponse> {
        match &self.body {
            AnswerBody::Envelope(response) => Some(response),
            AnswerBody::Relayed { envelope, .. } => Some(envelope),
            AnswerBody::Refusal(_) => None,
        }
    }

    /// The refusal, if the task was refused.
    pub fn as_refusal(&self) -> Option<&ErrorBody> {
        match &self.body {
            AnswerBody::Refusal(body) => Some(body),
            AnswerBody::Envelope(_) | AnswerBody::Relayed { .. } => None,
        }
    }

    /// The error code: the refusal's, or the error envelope's; `None` for a
    /// success.
    pub fn code(&self) -> Option<&str> {
        match &self.body {
            AnswerBody::Refusal(body) => Some(&body.error.code),
            AnswerBody::Envelope(r) => r.error.as_ref().and_then(|e| e.code.as_deref()),
            AnswerBody::Relayed { .. } => None,
        }
    }

    /// The error message, like [`code`](Self::code).
    pub fn message(&self) -> Option<&str> {
        match &self.body {
            AnswerBody::Refusal(body) => Some(&body.error.message),
            AnswerBody::Envelope(r) => r.error.as_ref().map(|e| e.message.as_str()),
            AnswerBody::Relayed { .. } => None,
        }
    }

    /// The handler's result of a plaintext success (`None` for a relayed
    /// one: it is text).
    pub fn result(&self) -> Option<&Value> {
        self.as_envelope().and_then(|r| r.result.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TaskStatus;
    use serde_json::json;

    #[test]
    fn a_refusal_reads_and_serialises_as_the_error_body() {
        let body = ErrorBody::new("IICP-E021", "capacity_exceeded").with("retry_after_ms", 2000);
        let a = Answer::refusal(429, body.clone()).retry_after(2);
        assert_eq!((a.status, a.retry_after_s), (429, Some(2)));
        assert_eq!(a.code(), Some("IICP-E021"));
        assert_eq!(a.message(), Some("capacity_exceeded"));
        assert_eq!(a.as_refusal(), Some(&body));
        assert!(a.as_envelope().is_none() && a.result().is_none());
        assert_eq!(a.to_json(), serde_json::to_vec(&body).unwrap());
    }

    #[test]
    fn a_relayed_answer_is_the_envelope_with_the_text_as_its_result() {
        let text = "{\"model\": \"m\",\n \"usage\": {\"total_tokens\": 4}}\n";
        let glance = crate::node::relayed::glance(text.as_bytes()).unwrap();
        let a = crate::node::envelope::relayed("t", text.into(), glance, 3, Some("n".into()));
        let parsed = crate::node::envelope::success(
            "t",
            serde_json::from_str(text).unwrap(),
            3,
            Some("n".into()),
        );
        let out = a.to_json();
        assert!(String::from_utf8_lossy(&out).starts_with(&format!("{{\"result\":{text},")));
        let read: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(read, serde_json::to_value(&parsed).unwrap());
        assert_eq!((a.status, a.code(), a.result()), (200, None, None));
    }

    #[test]
    fn an_envelope_reads_its_result_or_error() {
        let ok = crate::node::envelope::success("t", json!({"x": 1}), 3, None);
        let a = Answer::envelope(200, ok.clone());
        assert_eq!(a.result(), Some(&json!({"x": 1})));
        assert_eq!((a.code(), a.message()), (None, None));
        assert_eq!(a.to_json(), serde_json::to_vec(&ok).unwrap());
        let failed = crate::node::envelope::failure(
            "t",
            TaskStatus::Timeout,
            "task_timeout",
            "late",
            None,
            None,
        );
        let a = Answer::envelope(504, failed);
        assert_eq!(
            (a.code(), a.message()),
            (Some("task_timeout"), Some("late"))
        );
        assert!(a.result().is_none() && a.as_refusal().is_none());
    }

    #[test]
    fn too_large_names_the_limit() {
        let a = Answer::too_large(2048);
        assert_eq!((a.status, a.code()), (413, Some("payload_too_large")));
        assert!(a.message().unwrap().contains("2048 bytes"));
    }
}
