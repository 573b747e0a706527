//! Judging a node's answer envelope, whatever carried it (HTTP body or
//! native RESPONSE): success, a refusal to retry here or elsewhere, or a
//! failure; sealed answers are opened first (PROTOCOL.md §2.3, §2.5).

use super::retry::Verdict;
use super::seal::Sealed;
use crate::error::IicpError;
use crate::wire::{TaskResponse, TaskStatus};
use std::time::Duration;

/// An attempt that produced no answer: what to do next and why.
#[derive(Debug)]
pub(crate) struct Judged {
    pub verdict: Verdict,
    pub error: IicpError,
    /// The node's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Judged {
    pub fn new(verdict: Verdict, error: IicpError) -> Self {
        Self {
            verdict,
            error,
            retry_after: None,
        }
    }
}

/// The outcome of one exchange with a node.
pub(crate) type Exchanged = std::result::Result<TaskResponse, Judged>;

/// Reads a 2xx body: a success envelope is returned; an error or timeout
/// envelope, or a "success" whose result is really a backend error
/// (`{"error_code","error_message"}`, PROTOCOL.md §2.3), is judged. The
/// answer to a sealed request must be sealed: it is opened (the plaintext is
/// the whole envelope) and judged; a plaintext success is refused.
pub(crate) fn judge_success_body(bytes: &[u8], target: &str, sealed: Option<&Sealed>) -> Exchanged {
    let response: TaskResponse = serde_json::from_slice(bytes).map_err(|e| {
        Judged::new(
            Verdict::NextNode,
            IicpError::Decode {
                what: format!("the answer of {target}"),
                reason: e.to_string(),
            },
        )
    })?;
    judge_envelope(response, target, sealed)
}

/// Judges a decoded answer envelope as [`judge_success_body`] does.
pub(crate) fn judge_envelope(
    response: TaskResponse,
    target: &str,
    sealed: Option<&Sealed>,
) -> Exchanged {
    if let Some(sealed) = sealed {
        if let Some(conf_resp) = &response.iicp_conf_resp {
            let plain = sealed.open(conf_resp).map_err(|e| {
                Judged::new(
                    Verdict::NextNode,
                    IicpError::Protocol {
                        code: e.code().into(),
                        message: format!("the encrypted answer of {target} does not open: {e}"),
                        status: 200,
                    },
                )
            })?;
            return judge_success_body(&plain, target, None);
        }
        if response.status.is_success() {
            return Err(Judged::new(
                Verdict::NextNode,
                IicpError::Protocol {
                    code: "IICP-CX-RESP-REQUIRED".into(),
                    message: format!(
                        "{target} answered an encrypted request in plaintext; the answer is refused"
                    ),
                    status: 200,
                },
            ));
        }
    }
    match response.status {
        TaskStatus::Timeout => Err(Judged::new(
            Verdict::RetrySameNode,
            IicpError::Protocol {
                code: "task_timeout".into(),
                message: format!("{target} ran out of time"),
                status: 504,
            },
        )),
        TaskStatus::Error => {
            let err = response.error.unwrap_or_else(|| crate::wire::TaskError {
                code: None,
                message: "the node reported an error".into(),
                extra: Default::default(),
            });
            Err(Judged::new(
                Verdict::NextNode,
                IicpError::Protocol {
                    code: err.code.unwrap_or_else(|| "task_error".into()),
                    message: err.message,
                    status: 200,
                },
            ))
        }
        _ => {
            if let Some(code) = response
                .result
                .as_ref()
                .and_then(|r| r.get("error_code"))
                .filter(|c| c.is_number())
            {
                let message = response
                    .result
                    .as_ref()
                    .and_then(|r| r.get("error_message"))
                    .and_then(|m| m.as_str())
                    .unwrap_or("backend failed");
                return Err(Judged::new(
                    Verdict::NextNode,
                    IicpError::Backend(format!("{target} backend answered {code}: {message}")),
                ));
            }
            Ok(response)
        }
    }
}
