//! The consumer: [`IicpClient`] discovers nodes for an intent at a
//! directory, selects, submits with failover, and offers `chat()` returning
//! an OpenAI-shaped reply (PROTOCOL.md §1.6, §2.3, §5, §6).
//!
//! It owns the HTTP clients (one for the directory, one guarded for nodes),
//! the discovery cache and the retry policy. It never rewrites a
//! directory's score and never logs payloads or tokens.

mod attempt;
mod candidates;
pub(crate) mod chat;
pub(crate) mod complete;
mod config;
mod consumer_token;
pub(crate) mod discovery;
pub(crate) mod embed;
pub(crate) mod guard;
mod http_attempt;
mod judge;
#[cfg(feature = "iicp-tcp")]
mod native_answer;
mod native_attempt;
mod retry;
mod route;
mod seal;
pub mod selection;
mod stream;
mod submit;
pub mod trace;
mod ttl_cache;

pub use chat::ChatResponse;
pub use complete::CompletionResponse;
pub use config::{
    ChatOptions, ClientBuilder, ClientConfig, ClientOptions, DEFAULT_DIRECTORY_URL,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT_MS, DiscoverOptions, ENV_VARS, EmbedOptions,
    MAX_TIMEOUT_MS,
};
pub use embed::EmbedResponse;
pub use selection::SelectionStrategy;
pub use stream::{ChatChunk, ChatStream, ChatStreamEnd, ChatStreamEvent, ChunkChoice, ChunkDelta};

use crate::error::{IicpError, Result};
use crate::wire::{
    ChatMessage, EmbeddingInput, IntentUrn, NodeList, TaskRequest, TaskResponse,
    check_intent_policy,
};
use discovery::{DiscoverParams, DiscoveryCache};
use guard::EndpointGuard;
use std::sync::Arc;
use std::time::Duration;

/// The IICP consumer. Cheap to clone; clones share connections and cache.
///
/// ```no_run
/// use iicp_client::{ChatMessage, ChatOptions, ClientConfig, IicpClient};
///
/// #[tokio::main]
/// async fn main() -> iicp_client::Result<()> {
///     let client = IicpClient::new(ClientConfig::default())?;
///     let reply = client.chat(
///         vec![
///             ChatMessage { role: "system".into(), content: "You are a helpful assistant.".into() },
///             ChatMessage { role: "user".into(), content: "What is IICP?".into() },
///         ],
///         Some(ChatOptions { timeout_ms: Some(30_000), ..Default::default() }),
///     ).await?;
///     println!("{}", reply.choices[0].message.content);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct IicpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: ClientConfig,
    options: ClientOptions,
    directory_http: reqwest::Client,
    node_http: reqwest::Client,
    guard: EndpointGuard,
    cache: DiscoveryCache<discovery::Screened>,
    consumer_tokens: consumer_token::ConsumerTokens,
    /// Native connections to nodes (used with `prefer_native`).
    #[cfg(feature = "iicp-tcp")]
    native: crate::transport::NativePool,
}

impl Inner {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }
}

/// The pool of native connections: answers are bounded by
/// `max_response_bytes` (a larger frame ends its connection), and a node
/// that does not complete the handshake within 5 s is reached over HTTP.
#[cfg(feature = "iicp-tcp")]
fn native_pool(options: &ClientOptions, guard: &EndpointGuard) -> crate::transport::NativePool {
    let mut pool = crate::transport::PoolOptions::default();
    pool.connection.timeout = Duration::from_secs(5);
    pool.connection.max_frame = options
        .max_response_bytes
        .min(crate::transport::DEFAULT_MAX_FRAME_PAYLOAD);
    crate::transport::NativePool::with_resolver(pool, guard.native_resolver())
}

fn user_agent() -> String {
    format!("iicp-client-rust/{}", env!("CARGO_PKG_VERSION"))
}

impl IicpClient {
    /// A client with default options; no environment variable is read.
    /// Fails with `invalid_config` when `timeout_ms` is outside
    /// 1..=120 000 (SDK-04) or `directory_url` is not a URL.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::from_parts(config, ClientOptions::default())
    }

    /// A builder for everything beyond [`ClientConfig`], starting from the
    /// defaults (no environment variable is read unless
    /// [`ClientBuilder::with_env`] is called).
    pub fn builder(config: ClientConfig) -> ClientBuilder {
        ClientBuilder {
            config,
            options: ClientOptions::default(),
        }
    }

    pub(crate) fn from_parts(mut config: ClientConfig, options: ClientOptions) -> Result<Self> {
        config::check_timeout("timeout_ms", config.timeout_ms)?;
        config.directory_url = config.directory_url.trim_end_matches('/').to_owned();
        reqwest::Url::parse(&config.directory_url).map_err(|_| {
            IicpError::InvalidConfig(format!(
                "directory_url `{}` is not a valid URL",
                config.directory_url
            ))
        })?;
        let build_err = |e: reqwest::Error| IicpError::InvalidConfig(format!("HTTP client: {e}"));
        let directory_http = crate::outbound::directory_client(&user_agent())?;
        let guard = EndpointGuard::new(options.allow_private_nodes);
        let node_http = guard
            .apply(
                reqwest::Client::builder()
                    .user_agent(user_agent())
                    .pool_idle_timeout(crate::outbound::POOL_IDLE_TIMEOUT),
            )
            .build()
            .map_err(build_err)?;
        #[cfg(feature = "iicp-tcp")]
        let native = native_pool(&options, &guard);
        Ok(Self {
            inner: Arc::new(Inner {
                #[cfg(feature = "iicp-tcp")]
                native,
                config,
                options,
                directory_http,
                node_http,
                guard,
                cache: DiscoveryCache::default(),
                consumer_tokens: Default::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Asks the directory which nodes serve `intent`, a URN string or an
    /// [`IntentUrn`] (e.g. [`IntentUrn::LLM_CHAT_V1`]). `traceparent` is an
    /// optional W3C trace context to propagate. Always asks the directory
    /// (the cache serves only `submit()` and `chat()`). A malformed intent
    /// fails with `InvalidIntent` before any request.
    ///
    /// ```no_run
    /// # async fn f(client: iicp_client::IicpClient) -> iicp_client::Result<()> {
    /// use iicp_client::{DiscoverOptions, IntentUrn};
    /// let all = client.discover(IntentUrn::LLM_CHAT_V1, None, None).await?;
    /// let near = client
    ///     .discover("urn:iicp:intent:llm:chat:v1", Some(DiscoverOptions { limit: Some(3), ..Default::default() }), None)
    ///     .await?;
    /// assert!(near.nodes.len() <= 3 && all.nodes.len() <= 10);
    /// # Ok(()) }
    /// ```
    pub async fn discover(
        &self,
        intent: impl AsRef<str>,
        options: Option<DiscoverOptions>,
        traceparent: Option<&str>,
    ) -> Result<NodeList> {
        let intent = IntentUrn::parse(intent.as_ref())?;
        check_intent_policy(intent.as_str())?;
        let trace = trace::resolve(traceparent)?;
        let options = options.unwrap_or_default();
        let params = DiscoverParams {
            intent: intent.as_str(),
            region: options
                .region
                .as_deref()
                .or(self.inner.config.region.as_deref()),
            model: options.model.as_deref(),
            min_reputation: options.min_reputation,
            limit: options.limit,
            qos: None,
        };
        let url = discovery::discover_url(&self.inner.config.directory_url, &params)?;
        let (list, _) = discovery::fetch(
            &self.inner.directory_http,
            url,
            &params,
            &trace,
            self.inner.timeout(),
        )
        .await?;
        Ok(list)
    }

    /// Runs a task on the best available node, failing over to up to three
    /// candidates (SDK-01). The task id is generated when empty (SDK-02);
    /// `timeout_ms` bounds the whole call. Failures, by variant: a node's
    /// refusal, or the same error from every candidate, is `Protocol`;
    /// different failures are `NoAvailableNode` with the last one in `last`;
    /// no node at all is `NoAvailableNode { last: None, .. }`.
    ///
    /// ```no_run
    /// # async fn f(client: iicp_client::IicpClient) -> iicp_client::Result<()> {
    /// use iicp_client::{IicpError, IntentUrn, TaskRequest};
    /// use serde_json::json;
    /// let task = TaskRequest::new(IntentUrn::LLM_CHAT_V1, json!({"messages": [{"role": "user", "content": "hi"}]}));
    /// match client.submit(task).await {
    ///     Ok(answer) => println!("{:?}", answer.result),
    ///     Err(IicpError::Protocol { code, status, .. }) => eprintln!("refused: {code} ({status})"),
    ///     Err(IicpError::NoAvailableNode { last: Some(last), .. }) => eprintln!("all failed, last: {last}"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn submit(&self, request: TaskRequest) -> Result<TaskResponse> {
        self.submit_traced(request, None).await
    }

    /// [`submit`](Self::submit) with the caller's W3C `traceparent`, sent
    /// to the directory and on every attempt.
    pub async fn submit_traced(
        &self,
        request: TaskRequest,
        traceparent: Option<&str>,
    ) -> Result<TaskResponse> {
        let route = route::Route {
            model: request.constraints.as_ref().and_then(|c| c.model.clone()),
            qos: request.constraints.as_ref().and_then(|c| c.effective_qos()),
            region: None,
            qos_is_default: false,
        };
        submit::submit(
            &self.inner,
            request,
            route,
            traceparent,
            self.inner.timeout(),
        )
        .await
    }

    /// [`submit_traced`](Self::submit_traced) with the QoS default of the
    /// typed calls ([`chat`](Self::chat), [`embed`](Self::embed),
    /// [`complete`](Self::complete)), for callers such as a gateway that
    /// build the task themselves: a request whose constraints name no QoS
    /// class asks discovery for `interactive`, and when the directory lists
    /// no node there (it hides nodes in probation, fewer than 100 completed
    /// tasks, from `interactive`) asks again at `batch`, logging so at
    /// debug level; the task then carries `qos: batch`. A request that names
    /// a class is routed by that class alone, as with `submit`.
    pub async fn submit_interactive(
        &self,
        mut request: TaskRequest,
        traceparent: Option<&str>,
    ) -> Result<TaskResponse> {
        let constraints = request.constraints.get_or_insert_with(Default::default);
        let route = route::Route::with_default_qos(
            None,
            constraints.model.clone(),
            constraints.effective_qos(),
        );
        constraints.qos = route.qos;
        submit::submit(
            &self.inner,
            request,
            route,
            traceparent,
            self.inner.timeout(),
        )
        .await
    }

    /// [`chat_stream`](Self::chat_stream) for a task the caller built
    /// itself, such as a gateway passing an OpenAI chat request through
    /// unchanged: the chat intent's payload as given, the QoS default and
    /// its probation fallback of
    /// [`submit_interactive`](Self::submit_interactive), the client's
    /// `timeout_ms` for the whole stream.
    pub async fn chat_stream_task(&self, mut request: TaskRequest) -> Result<ChatStream> {
        let constraints = request.constraints.get_or_insert_with(Default::default);
        let route = route::Route::with_default_qos(
            None,
            constraints.model.clone(),
            constraints.effective_qos(),
        );
        constraints.qos = route.qos;
        submit::stream(&self.inner, request, route, self.inner.timeout()).await
    }

    /// Asks the directory which nodes serve `intent` (all QoS classes) and
    /// how long the answer may be reused (its `Cache-Control: max-age`).
    pub(crate) async fn discover_with_max_age(
        &self,
        intent: IntentUrn,
    ) -> Result<(NodeList, Option<Duration>)> {
        let trace = trace::resolve(None)?;
        let params = DiscoverParams {
            intent: intent.as_str(),
            region: self.inner.config.region.as_deref(),
            model: None,
            min_reputation: None,
            limit: None,
            qos: None,
        };
        let url = discovery::discover_url(&self.inner.config.directory_url, &params)?;
        discovery::fetch(
            &self.inner.directory_http,
            url,
            &params,
            &trace,
            self.inner.timeout(),
        )
        .await
    }

    /// Runs a typed call's task (chat, embedding, completion) with the
    /// QoS default and its probation fallback.
    async fn submit_typed(
        &self,
        intent: IntentUrn,
        payload: serde_json::Value,
        timeout_ms: Option<u64>,
        route: route::Route,
        max_tokens: Option<u64>,
    ) -> Result<TaskResponse> {
        let (task, timeout) = self.typed_task(intent, payload, timeout_ms, &route, max_tokens)?;
        submit::submit(&self.inner, task, route, None, timeout).await
    }

    /// A typed call's task: the payload, the constraints its route implies
    /// (model, QoS class, `max_tokens`) and its deadline (checked, SDK-04).
    fn typed_task(
        &self,
        intent: IntentUrn,
        payload: serde_json::Value,
        timeout_ms: Option<u64>,
        route: &route::Route,
        max_tokens: Option<u64>,
    ) -> Result<(TaskRequest, Duration)> {
        let timeout_ms = timeout_ms.unwrap_or(self.inner.config.timeout_ms);
        config::check_timeout("timeout_ms", timeout_ms)?;
        let mut task = TaskRequest::new(intent, payload);
        task.constraints = Some(crate::wire::TaskConstraints {
            max_tokens,
            model: route.model.clone(),
            qos: route.qos,
            ..Default::default()
        });
        Ok((task, Duration::from_millis(timeout_ms)))
    }

    /// Sends a chat to the mesh and returns the OpenAI-shaped reply.
    ///
    /// Without [`ChatOptions::qos`] it asks for `interactive` nodes and,
    /// when the directory lists none (a young mesh whose nodes are still
    /// in probation), for `batch` nodes (see
    /// [`submit_interactive`](Self::submit_interactive)); with a QoS set
    /// there is no second try.
    pub async fn chat(
        &self,
        messages: Vec<ChatMessage>,
        options: Option<ChatOptions>,
    ) -> Result<ChatResponse> {
        let (task, route, timeout) = self.chat_task(messages, options)?;
        let response = submit::submit(&self.inner, task, route, None, timeout).await?;
        chat::into_chat_response(response)
    }

    /// Sends a chat to the mesh and returns its answer as it is generated:
    /// a [`ChatStream`] of OpenAI `chat.completion.chunk` items
    /// ([`ChatStreamEvent::Chunk`]) and then one [`ChatStreamEvent::Done`]
    /// with the finish reason, the usage and the whole answer.
    ///
    /// Discovery, selection, the deadline (`timeout_ms`, which bounds the
    /// whole stream) and failover are those of [`chat`](Self::chat), up to
    /// the first chunk: an error before it is this call's `Err`, afterwards
    /// it is an item of the stream, which then ends. The answer streams over
    /// the native transport (its lifecycle CALL, on a connection of its own)
    /// from a node that lists an `iicp://` endpoint, whatever
    /// [`prefer_native`](ClientBuilder::prefer_native) says. A node without
    /// one, and every task sealed with IICP-CX (partials travel in
    /// plaintext, so a confidential task is never streamed), give the
    /// buffered answer as one chunk. The chunks always add up to the final
    /// answer, and the last chunk of a choice carries its finish reason.
    ///
    /// Dropping the stream before its end closes its connection: the node
    /// aborts the handler and its model server call.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use iicp_client::{ChatMessage, ChatStreamEvent, ClientConfig, IicpClient};
    ///
    /// # async fn f() -> iicp_client::Result<()> {
    /// let client = IicpClient::builder(ClientConfig::default())
    ///     .allow_plaintext(true) // a CX-sealed chat comes as one chunk
    ///     .build()?;
    /// let mut stream = client
    ///     .chat_stream(vec![ChatMessage::user("Tell me about IICP.")], None)
    ///     .await?;
    /// while let Some(event) = stream.next().await {
    ///     match event? {
    ///         ChatStreamEvent::Chunk(chunk) => print!("{}", chunk.text()),
    ///         ChatStreamEvent::Done(end) => println!("\n[{:?}, {:?}]", end.finish_reason, end.usage),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn chat_stream(
        &self,
        messages: Vec<ChatMessage>,
        options: Option<ChatOptions>,
    ) -> Result<ChatStream> {
        let (task, route, timeout) = self.chat_task(messages, options)?;
        submit::stream(&self.inner, task, route, timeout).await
    }

    /// The task, route and deadline of a chat (buffered or streamed): the
    /// QoS default and its probation fallback as for every typed call.
    fn chat_task(
        &self,
        messages: Vec<ChatMessage>,
        options: Option<ChatOptions>,
    ) -> Result<(TaskRequest, route::Route, Duration)> {
        let options = options.unwrap_or_default();
        if messages.is_empty() {
            return Err(IicpError::InvalidConfig(
                "chat needs at least one message".into(),
            ));
        }
        let payload = chat::payload(
            &messages,
            options.model.as_deref(),
            options.temperature,
            options.max_tokens,
        );
        let route = route::Route::with_default_qos(
            options.region.clone(),
            options.model.clone(),
            options.qos,
        );
        let (task, timeout) = self.typed_task(
            IntentUrn::LLM_CHAT_V1,
            payload,
            options.timeout_ms,
            &route,
            options.max_tokens,
        )?;
        Ok((task, route, timeout))
    }

    /// Embeds one text or several with the embedding intent
    /// (`urn:iicp:intent:llm:embedding:v1`): the payload is an OpenAI
    /// embeddings request `{model?, input}`, the answer the OpenAI list of
    /// vectors, one per input in input order (a node answering with a
    /// different count is a `decode_error`). Discovery, failover, QoS and
    /// sealing work as for [`chat`](Self::chat).
    ///
    /// A whole mesh in one process, with a node whose handler answers a
    /// fixed vector; against a real mesh only the client part is needed:
    ///
    /// ```
    /// use iicp_client::{ClientConfig, EmbedOptions, IicpClient, IntentUrn};
    /// # use iicp_client::{IicpNode, NodeConfig, TaskContext, TaskRequest};
    /// # use iicp_client::directory::{Directory, DirectoryConfig};
    ///
    /// #[tokio::main]
    /// async fn main() -> iicp_client::Result<()> {
    /// #   let dir = Directory::start(DirectoryConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
    /// #   let node = IicpNode::new(NodeConfig {
    /// #       directory_url: dir.url(),
    /// #       host: "127.0.0.1".into(),
    /// #       port: 0,
    /// #       intent: IntentUrn::LLM_EMBEDDING_V1.into(),
    /// #       models: vec!["nomic-embed-text".into()],
    /// #       ..NodeConfig::default()
    /// #   })
    /// #   .start(|req: TaskRequest, _ctx: TaskContext| async move {
    /// #       let n = req.payload["input"].as_array().map_or(1, Vec::len);
    /// #       let data: Vec<_> = (0..n)
    /// #           .map(|i| serde_json::json!({"index": i, "embedding": [0.1, 0.2, 0.3]}))
    /// #           .collect();
    /// #       Ok(serde_json::json!({"object": "list", "model": "nomic-embed-text", "data": data}))
    /// #   })
    /// #   .await?;
    /// #   node.registered().await;
    ///     let client = IicpClient::builder(ClientConfig {
    ///         directory_url: dir.url(),
    ///         ..ClientConfig::default()
    ///     })
    ///     .allow_private_nodes(true) // the nodes of this example are on loopback
    ///     .build()?;
    ///     let one = client.embed("What is IICP?", None).await?;
    ///     println!("{} dimensions", one.data[0].embedding.len());
    ///     let two = client
    ///         .embed(
    ///             ["a cat", "a dog"],
    ///             Some(EmbedOptions { model: Some("nomic-embed-text".into()), ..Default::default() }),
    ///         )
    ///         .await?;
    ///     assert_eq!(two.vectors().len(), 2);
    ///     assert_eq!(two.vectors()[1], [0.1f32, 0.2, 0.3]);
    /// #   node.shutdown().await;
    /// #   dir.shutdown().await;
    ///     Ok(())
    /// }
    /// ```
    pub async fn embed(
        &self,
        input: impl Into<EmbeddingInput>,
        options: Option<EmbedOptions>,
    ) -> Result<EmbedResponse> {
        let input = input.into();
        let options = options.unwrap_or_default();
        if input.is_empty() {
            return Err(IicpError::InvalidConfig(
                "embed needs at least one input".into(),
            ));
        }
        let payload = embed::payload(&input, options.model.as_deref());
        let route = route::Route::with_default_qos(
            options.region.clone(),
            options.model.clone(),
            options.qos,
        );
        let response = self
            .submit_typed(
                IntentUrn::LLM_EMBEDDING_V1,
                payload,
                options.timeout_ms,
                route,
                None,
            )
            .await?;
        embed::into_embed_response(response, input.len())
    }

    /// Completes a text prompt with the completion intent
    /// (`urn:iicp:intent:llm:completion:v1`): the payload is an OpenAI
    /// completions request `{prompt, model?, temperature?, max_tokens?}`,
    /// the answer the OpenAI text completion. Options, discovery, failover,
    /// QoS and sealing are those of [`chat`](Self::chat).
    ///
    /// ```no_run
    /// # async fn f(client: iicp_client::IicpClient) -> iicp_client::Result<()> {
    /// use iicp_client::ChatOptions;
    /// let c = client
    ///     .complete("Once upon a time", Some(ChatOptions { max_tokens: Some(16), ..Default::default() }))
    ///     .await?;
    /// println!("{}", c.text());
    /// # Ok(()) }
    /// ```
    pub async fn complete(
        &self,
        prompt: &str,
        options: Option<ChatOptions>,
    ) -> Result<CompletionResponse> {
        let options = options.unwrap_or_default();
        let payload = complete::payload(
            prompt,
            options.model.as_deref(),
            options.temperature,
            options.max_tokens,
        );
        let route = route::Route::with_default_qos(
            options.region.clone(),
            options.model.clone(),
            options.qos,
        );
        let response = self
            .submit_typed(
                IntentUrn::LLM_COMPLETION_V1,
                payload,
                options.timeout_ms,
                route,
                options.max_tokens,
            )
            .await?;
        complete::into_completion_response(response)
    }
}
