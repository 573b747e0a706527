//! Driving a streamed model answer: events from the server ([`SseStream`])
//! become OpenAI chunks (each engine says how), the chunks fold into the
//! whole answer and pass on, grouped, as partial results ([`ChatStream`]).
//! Held-back text leaves after [`GROUP_WAIT`] even while the server is
//! silent. When the consumer is gone (`PartialSink::send` is `false`) the
//! stream stops and the connection to the server is dropped.

use super::chat_stream::{ChatStream, GROUP_WAIT};
use super::error::BackendError;
use super::sse::{SseEvent, SseStream};
use crate::partials::PartialSink;
use serde_json::Value;
use tokio::time::Instant;

/// What one server event means.
pub(crate) enum Step {
    /// An OpenAI `chat.completion.chunk` to fold in and pass on.
    Chunk(Value),
    /// Nothing to do (a keep-alive, a block start without text, …).
    Skip,
    /// The server says the answer is complete.
    Done,
}

/// Runs `events` to the end, sending partials to `sink`, and returns the
/// whole answer as a `chat.completion`. A stream that ends (`[DONE]`, or the
/// body's end) before every choice has its `finish_reason` is an error
/// (`BadAnswer`): the answer was cut, and a consumer must not take it for
/// the whole one.
pub(crate) async fn drive(
    mut events: SseStream,
    sink: &PartialSink,
    mut step: impl FnMut(SseEvent) -> Result<Step, BackendError>,
) -> Result<Value, BackendError> {
    let mut stream = ChatStream::default();
    let mut flush_at: Option<Instant> = None;
    loop {
        let next = match flush_at {
            None => events.next_event().await,
            Some(at) => match tokio::time::timeout_at(at, events.next_event()).await {
                Ok(next) => next,
                Err(_waited) => {
                    flush_at = None;
                    if let Some(partial) = stream.flush() {
                        pass_on(sink, partial).await?;
                    }
                    continue;
                }
            },
        };
        let Some(event) = next? else { break };
        let chunk = match step(event)? {
            Step::Chunk(chunk) => chunk,
            Step::Skip => continue,
            Step::Done => break,
        };
        for partial in stream.absorb(&chunk)? {
            pass_on(sink, partial).await?;
        }
        flush_at = if stream.has_pending() {
            flush_at.or_else(|| Some(Instant::now() + GROUP_WAIT))
        } else {
            None
        };
    }
    if let Some(partial) = stream.flush() {
        pass_on(sink, partial).await?;
    }
    if !stream.is_finished() {
        // What was streamed stays streamed, but the task does not pass a
        // cut answer off as a whole one: it ends with an error.
        return Err(BackendError::BadAnswer(
            "the backend ended the stream before the answer's finish_reason: \
             the answer is incomplete"
                .into(),
        ));
    }
    Ok(stream.finish())
}

async fn pass_on(sink: &PartialSink, partial: Value) -> Result<(), BackendError> {
    if sink.send(partial).await {
        Ok(())
    } else {
        Err(BackendError::Unreachable(
            "the consumer closed the stream".into(),
        ))
    }
}

/// An OpenAI-compatible server's events: JSON chunks, then `[DONE]`.
pub(crate) fn openai_step(event: SseEvent) -> Result<Step, BackendError> {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Ok(Step::Done);
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| BackendError::BadAnswer(format!("a streamed chunk is not JSON: {e}")))?;
    if let Some(error) = chunk.get("error") {
        // Some servers report a failure mid-stream this way.
        let detail = super::error::scrub(&error.to_string(), None);
        tracing::warn!(body = ?detail, "the backend failed while streaming");
        return Err(BackendError::BadAnswer(
            "the backend reported an error while streaming".into(),
        ));
    }
    Ok(Step::Chunk(chunk))
}
