//! `chat_stream()`: a chat answered as a [`Stream`] of OpenAI
//! `chat.completion.chunk` items, then one [`ChatStreamEnd`] with the whole
//! answer, its finish reason and usage.
//!
//! How it streams: over the native transport's lifecycle (a CALL with key
//! 24, PROTOCOL.md §7.1) on a connection of its own, so that dropping the
//! stream closes that connection and the node aborts the handler and its
//! backend call (the node cancels a session's calls on CLOSE or end of
//! stream). Each `partial` step the node sends becomes a chunk; the final
//! `completed` step is the whole answer. A node without an `iicp://`
//! endpoint, a build without `iicp-tcp`, a native connection that cannot be
//! made, and every sealed (IICP-CX) task get the buffered answer instead,
//! as one chunk: partials travel in plaintext, so the node never streams a
//! CX task and neither does this client.
//!
//! The chunks always add up to the final answer: text the partials did not
//! carry (a handler that sends none, or sends something else than chunks)
//! comes as one last chunk from the final answer, and the last chunk of
//! each choice carries its finish reason. A gateway re-emits every
//! [`ChatStreamEvent::Chunk`] as one SSE `data:` line, and at
//! [`ChatStreamEvent::Done`] the optional usage chunk
//! ([`ChatStreamEnd::usage_chunk`]), then `[DONE]`.

use super::chat::ChatResponse;
#[cfg(feature = "iicp-tcp")]
use crate::error::IicpError;
use crate::error::Result;
use crate::wire::ChatUsage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};

/// One OpenAI `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Completion id (the same in every chunk of a completion).
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default = "chunk_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answers.
    #[serde(default)]
    pub model: String,
    /// The deltas, one per choice that changed.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token usage (only in a usage chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
    /// Other fields of the chunk (e.g. `system_fingerprint`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".into()
}

/// One choice's delta in a [`ChatChunk`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which choice.
    #[serde(default)]
    pub index: u32,
    /// What it adds.
    #[serde(default)]
    pub delta: ChunkDelta,
    /// Set in the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields (e.g. `logprobs`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDelta {
    /// `assistant`, in a choice's first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text to append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Other fields (e.g. `tool_calls`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChunk {
    /// The text this chunk adds to its first choice (empty when none).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or_default()
    }
}

/// One item of a [`ChatStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum ChatStreamEvent {
    /// A piece of the answer.
    Chunk(ChatChunk),
    /// The end: always the last item of a stream that succeeded.
    Done(Box<ChatStreamEnd>),
}

/// The end of a streamed chat.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatStreamEnd {
    /// The first choice's finish reason (`stop`, `length`, `tool_calls`…).
    pub finish_reason: Option<String>,
    /// Token usage, when the node reported it.
    pub usage: Option<ChatUsage>,
    /// Whether the node streamed (false: the buffered answer came as one
    /// chunk).
    pub streamed: bool,
    /// The whole answer, as [`IicpClient::chat`](super::IicpClient::chat)
    /// returns it (with the task id and the node that served it).
    pub response: ChatResponse,
}

impl ChatStreamEnd {
    /// The chunk OpenAI sends last when `stream_options.include_usage` is
    /// set: no choices, the usage. `None` without usage.
    pub fn usage_chunk(&self) -> Option<ChatChunk> {
        let r = &self.response;
        self.usage.as_ref().map(|usage| ChatChunk {
            id: r.id.clone(),
            object: chunk_object(),
            created: r.created,
            model: r.model.clone(),
            choices: Vec::new(),
            usage: Some(usage.clone()),
            extra: Map::new(),
        })
    }
}

/// Folds what has streamed so far, so the final answer can complete it.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// (id, created, model) of the chunks so far.
    meta: Option<(String, u64, String)>,
    /// Text streamed per choice.
    texts: BTreeMap<u32, String>,
    /// Choices whose finish reason has been sent.
    finished: BTreeSet<u32>,
    /// Whether any chunk went out.
    pub(crate) started: bool,
}

impl Assembler {
    /// The chunk for one partial result: a `chat.completion.chunk` object
    /// as it came, or a bare string as a text delta. Anything else is not a
    /// chunk (the final answer then brings its text).
    #[cfg_attr(not(feature = "iicp-tcp"), allow(dead_code))]
    pub(crate) fn partial(&mut self, partial: Value) -> Option<ChatChunk> {
        let mut chunk = match partial {
            Value::String(text) if !text.is_empty() => ChatChunk {
                id: String::new(),
                object: chunk_object(),
                created: 0,
                model: String::new(),
                choices: vec![ChunkChoice {
                    delta: ChunkDelta {
                        content: Some(text),
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                usage: None,
                extra: Map::new(),
            },
            v @ Value::Object(_) if v.get("choices").is_some_and(Value::is_array) => {
                match serde_json::from_value::<ChatChunk>(v) {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        tracing::debug!(error = %e, "a partial that is not a chat chunk; skipped");
                        return None;
                    }
                }
            }
            _ => {
                tracing::debug!("a partial that is not a chat chunk; skipped");
                return None;
            }
        };
        if chunk.choices.is_empty() && chunk.usage.is_none() {
            return None;
        }
        chunk.object = chunk_object();
        match &self.meta {
            Some((id, created, model)) => {
                if chunk.id.is_empty() {
                    chunk.id = id.clone();
                }
                if chunk.created == 0 {
                    chunk.created = *created;
                }
                if chunk.model.is_empty() {
                    chunk.model = model.clone();
                }
            }
            None if !chunk.id.is_empty() => {
                self.meta = Some((chunk.id.clone(), chunk.created, chunk.model.clone()));
            }
            None => {}
        }
        for choice in &chunk.choices {
            if let Some(text) = &choice.delta.content {
                self.texts.entry(choice.index).or_default().push_str(text);
            }
            if choice.finish_reason.is_some() {
                self.finished.insert(choice.index);
            }
        }
        self.started = true;
        Some(chunk)
    }

    /// The events that end the stream with `response`, the whole answer:
    /// the text the chunks have not carried yet, the finish reasons not
    /// sent yet, then [`ChatStreamEvent::Done`].
    pub(crate) fn finish(mut self, response: ChatResponse, streamed: bool) -> Vec<ChatStreamEvent> {
        let (id, created, model) = self.meta.clone().unwrap_or_else(|| {
            (
                response.id.clone(),
                response.created,
                response.model.clone(),
            )
        });
        let mut choices = Vec::new();
        for choice in &response.choices {
            let whole = choice.message.content.text();
            let sent = self.texts.remove(&choice.index).unwrap_or_default();
            let nothing_sent = sent.is_empty() && !self.started;
            let rest = match whole.strip_prefix(sent.as_str()) {
                Some(rest) => rest.to_owned(),
                None => {
                    tracing::debug!(
                        "the streamed text is not a prefix of the final answer; \
                         the final answer is in the end event"
                    );
                    String::new()
                }
            };
            let finish = if self.finished.contains(&choice.index) {
                None
            } else {
                Some(
                    choice
                        .finish_reason
                        .clone()
                        .unwrap_or_else(|| "stop".into()),
                )
            };
            let mut delta = ChunkDelta {
                role: nothing_sent.then(|| choice.message.role.clone()),
                content: (!rest.is_empty()).then_some(rest),
                extra: Map::new(),
            };
            if nothing_sent {
                if let Some(Value::Array(calls)) = choice.message.extra.get("tool_calls") {
                    let indexed = calls
                        .iter()
                        .enumerate()
                        .map(|(i, call)| {
                            let mut call = call.clone();
                            if let Some(obj) = call.as_object_mut() {
                                obj.entry("index").or_insert(Value::from(i));
                            }
                            call
                        })
                        .collect();
                    delta
                        .extra
                        .insert("tool_calls".into(), Value::Array(indexed));
                }
            }
            if delta.content.is_some() || !delta.extra.is_empty() || finish.is_some() {
                choices.push(ChunkChoice {
                    index: choice.index,
                    delta,
                    finish_reason: finish,
                    extra: Map::new(),
                });
            }
        }
        let mut events = Vec::new();
        if !choices.is_empty() {
            events.push(ChatStreamEvent::Chunk(ChatChunk {
                id,
                object: chunk_object(),
                created,
                model,
                choices,
                usage: None,
                extra: Map::new(),
            }));
        }
        events.push(ChatStreamEvent::Done(Box::new(ChatStreamEnd {
            finish_reason: response
                .choices
                .first()
                .and_then(|c| c.finish_reason.clone())
                .or_else(|| Some("stop".into())),
            usage: response.usage.clone(),
            streamed,
            response,
        })));
        events
    }
}

/// A streamed chat answer, from
/// [`IicpClient::chat_stream`](super::IicpClient::chat_stream): items are
/// [`ChatStreamEvent::Chunk`]s in order, then one
/// [`ChatStreamEvent::Done`]. A failure after the first chunk is one `Err`
/// item, and the stream ends (no failover once a chunk was given out).
/// Dropping the stream before its end cancels the task on the node.
pub struct ChatStream {
    queue: VecDeque<Result<ChatStreamEvent>>,
    #[cfg(feature = "iicp-tcp")]
    native: Option<native::NativeSource>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The buffered answer as one chunk and the end.
    pub(crate) fn buffered(response: ChatResponse) -> Self {
        Self {
            queue: Assembler::default()
                .finish(response, false)
                .into_iter()
                .map(Ok)
                .collect(),
            #[cfg(feature = "iicp-tcp")]
            native: None,
        }
    }
}

impl futures_core::Stream for ChatStream {
    type Item = Result<ChatStreamEvent>;

    #[cfg_attr(not(feature = "iicp-tcp"), allow(clippy::never_loop))]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            #[cfg(feature = "iicp-tcp")]
            if let Some(source) = &mut this.native {
                match source.poll_events(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok((events, done))) => {
                        this.queue.extend(events.into_iter().map(Ok));
                        if done {
                            this.native = None;
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        // Dropping the source closes its connection.
                        this.native = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            #[cfg(not(feature = "iicp-tcp"))]
            let _ = cx;
            return Poll::Ready(None);
        }
    }
}

#[cfg(feature = "iicp-tcp")]
pub(crate) use native::{Opened, open};

#[cfg(feature = "iicp-tcp")]
mod native {
    use super::*;
    use crate::transport::{LifecycleEvent, NativeClient, StreamStep};
    use crate::wire::{TaskMetrics, TaskResponse, TaskStatus};
    use std::future::Future;
    use tokio::sync::mpsc;
    use tokio::time::{Instant, Sleep};

    /// Steps a stream's connection holds for a consumer that is behind.
    const STEPS: usize = 1024;

    /// A stream's own connection: closed (CLOSE, then end of stream) when
    /// dropped, which makes the node abort the call if it still runs.
    struct Connection(NativeClient);

    impl Drop for Connection {
        fn drop(&mut self) {
            self.0.close_now();
        }
    }

    /// The native side of a [`ChatStream`].
    pub(crate) struct NativeSource {
        steps: mpsc::Receiver<Result<StreamStep>>,
        _connection: Connection,
        deadline: Pin<Box<Sleep>>,
        total_ms: u64,
        next_sequence: u64,
        assembler: Option<Assembler>,
        task_id: String,
        node_id: String,
        target: String,
    }

    /// How opening a native stream on one node went.
    pub(crate) enum Opened {
        /// The first chunk (or the whole answer) arrived.
        Started(Box<ChatStream>),
        /// The CALL never reached the node: answer it another way.
        Unsent(IicpError),
        /// The node was reached and failed before any chunk.
        Failed(IicpError),
    }

    /// Opens a streaming CALL for `call` (its task id set as key 24) on a
    /// new connection to `endpoint`, and waits until the first chunk or the
    /// final answer is there, at most until `deadline`.
    pub(crate) async fn open(
        pool: &crate::transport::NativePool,
        endpoint: &str,
        mut call: crate::transport::Call,
        node_id: &str,
        target: &str,
        deadline: Instant,
        total_ms: u64,
    ) -> Opened {
        let task_id = call.task_id.clone().unwrap_or_default();
        call.task_id = Some(task_id.clone());
        let connecting = tokio::time::timeout_at(deadline, pool.dedicated(endpoint)).await;
        let client = match connecting {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Opened::Unsent(e),
            Err(_) => {
                return Opened::Failed(IicpError::Timeout {
                    what: target.to_owned(),
                    elapsed_ms: total_ms,
                });
            }
        };
        let steps = match client.stream_call(call, STEPS).await {
            Ok(steps) => steps,
            Err(failure) => return Opened::Unsent(failure.into_error()),
        };
        let mut source = NativeSource {
            steps,
            _connection: Connection(client),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            total_ms,
            next_sequence: 0,
            assembler: Some(Assembler::default()),
            task_id,
            node_id: node_id.to_owned(),
            target: target.to_owned(),
        };
        let mut queue = VecDeque::new();
        loop {
            match std::future::poll_fn(|cx| source.poll_events(cx)).await {
                Err(e) => return Opened::Failed(e),
                Ok((events, done)) => {
                    queue.extend(events.into_iter().map(Ok));
                    if done || !queue.is_empty() {
                        return Opened::Started(Box::new(ChatStream {
                            queue,
                            native: (!done).then_some(source),
                        }));
                    }
                }
            }
        }
    }

    impl NativeSource {
        /// The events of the next step; `true` once the stream is complete.
        pub(crate) fn poll_events(
            &mut self,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(Vec<ChatStreamEvent>, bool)>> {
            if self.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(IicpError::Timeout {
                    what: self.target.clone(),
                    elapsed_ms: self.total_ms,
                }));
            }
            let step = match self.steps.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(Err(IicpError::Transport {
                        target: self.target.clone(),
                        reason: "the stream ended before its final step".into(),
                    }));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(step))) => step,
            };
            Poll::Ready(self.apply(step))
        }

        fn apply(&mut self, step: StreamStep) -> Result<(Vec<ChatStreamEvent>, bool)> {
            if step.sequence != self.next_sequence {
                return Err(IicpError::Transport {
                    target: self.target.clone(),
                    reason: format!(
                        "stream step {} came where {} was due (steps were lost)",
                        step.sequence, self.next_sequence
                    ),
                });
            }
            self.next_sequence += 1;
            let assembler = self.assembler.as_mut().expect("a stream not yet ended");
            match step.event {
                LifecycleEvent::Partial if !step.is_final => Ok((
                    step.result
                        .and_then(|p| assembler.partial(p))
                        .map(ChatStreamEvent::Chunk)
                        .into_iter()
                        .collect(),
                    false,
                )),
                LifecycleEvent::Completed => {
                    let response = TaskResponse {
                        task_id: self.task_id.clone(),
                        status: TaskStatus::Success,
                        result: step.result,
                        error: None,
                        metrics: Some(TaskMetrics {
                            node_id: Some(self.node_id.clone()),
                            ..Default::default()
                        }),
                        model_used: None,
                        generated_by_ai: None,
                        iicp_conf_resp: None,
                        extra: Default::default(),
                    };
                    let response = super::super::chat::into_chat_response(response)?;
                    let assembler = self.assembler.take().expect("not yet ended");
                    Ok((assembler.finish(response, true), true))
                }
                LifecycleEvent::Accepted if !step.is_final => Ok((Vec::new(), false)),
                event => Err(IicpError::Protocol {
                    code: match event {
                        LifecycleEvent::TimedOut => "task_timeout".into(),
                        LifecycleEvent::Cancelled => "cancelled".into(),
                        _ => "task_error".into(),
                    },
                    message: format!("{} ended the stream ({event:?})", self.target),
                    status: 200,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(text: &str, finish: &str) -> ChatResponse {
        serde_json::from_value(json!({
            "id": "c1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "task_id": "t", "node_id": "n", "generated_by_ai": true
        }))
        .unwrap()
    }

    fn texts(events: &[ChatStreamEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                ChatStreamEvent::Chunk(c) => Some(c.text().to_owned()),
                ChatStreamEvent::Done(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_buffered_answer_is_one_chunk_with_role_text_and_finish_reason() {
        let events = Assembler::default().finish(response("hello there", "length"), false);
        assert_eq!(events.len(), 2);
        let ChatStreamEvent::Chunk(chunk) = &events[0] else {
            panic!("a chunk first")
        };
        assert_eq!(chunk.object, "chat.completion.chunk");
        assert_eq!((chunk.id.as_str(), chunk.created), ("c1", 7));
        assert_eq!(chunk.choices[0].delta.role.as_deref(), Some("assistant"));
        assert_eq!(chunk.text(), "hello there");
        assert_eq!(chunk.choices[0].finish_reason.as_deref(), Some("length"));
        let ChatStreamEvent::Done(end) = &events[1] else {
            panic!("then the end")
        };
        assert_eq!(end.finish_reason.as_deref(), Some("length"));
        let usage = end.usage_chunk().unwrap();
        assert!(usage.choices.is_empty());
        assert_eq!(usage.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn streamed_chunks_are_completed_from_the_final_answer() {
        let mut a = Assembler::default();
        let first = a
            .partial(json!({"id": "s", "created": 9, "model": "m", "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "hel"}, "finish_reason": null}]}))
            .unwrap();
        assert_eq!(first.text(), "hel");
        let second = a.partial(json!("lo")).unwrap();
        assert_eq!(second.id, "s");
        assert!(a.partial(json!({"piece": 1})).is_none());
        let mut events = vec![
            ChatStreamEvent::Chunk(first),
            ChatStreamEvent::Chunk(second),
        ];
        events.extend(a.finish(response("hello world", "stop"), true));
        assert_eq!(texts(&events), "hello world");
        let ChatStreamEvent::Chunk(last) = &events[events.len() - 2] else {
            panic!()
        };
        assert_eq!(last.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(last.id, "s");
        assert!(last.choices[0].delta.role.is_none());
    }

    #[test]
    fn a_finish_reason_already_streamed_is_not_sent_twice() {
        let mut a = Assembler::default();
        a.partial(json!({"id": "s", "choices": [
            {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}))
            .unwrap();
        let events = a.finish(response("hi", "stop"), true);
        assert_eq!(events.len(), 1, "only the end: {events:?}");
        assert!(matches!(&events[0], ChatStreamEvent::Done(end) if end.streamed));
    }

    #[test]
    fn chunks_serialise_as_openai_does() {
        let chunk = ChatChunk {
            id: "c".into(),
            object: chunk_object(),
            created: 1,
            model: "m".into(),
            choices: vec![ChunkChoice {
                delta: ChunkDelta {
                    content: Some("x".into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            usage: None,
            extra: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": null}]})
        );
    }
}
