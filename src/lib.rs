//! # iicp-client
//!
//! Rust SDK and node binary for IICP, the Intent-based Inter-agent
//! Communication Protocol: tasks are routed by *intent*
//! (`urn:iicp:intent:llm:chat:v1`) across a mesh of provider nodes found
//! through a directory, with no central broker carrying payloads.
//!
//! Layers, dependencies pointing down only (see `docs/ARCHITECTURE.md`):
//!
//! - [`client`]: the consumer, [`IicpClient`]: discover → select → submit
//!   → chat.
//! - [`node`]: the provider, [`IicpNode`]: serve tasks, register,
//!   heartbeat, deregister.
//! - [`backends`]: model servers behind a node (OpenAI-compatible engines,
//!   Anthropic) and the seed's `invoke_backend`.
//! - [`cx`]: IICP-CX confidentiality (X25519 + HKDF + AES-256-GCM), no I/O.
//! - [`directory`]: a local IICP directory, in-process or standalone
//!   (`iicp-node directory`).
//! - [`token`]: signed directory tokens (Ed25519 consumer tokens), no I/O.
//! - [`relay`]: the relay (tier 3): limits, and the relay server a
//!   relay-capable node runs (feature `iicp-tcp`).
//! - [`transport`]: the native transport's framing: frame codec and typed
//!   CBOR messages, no I/O besides the codec traits.
//! - [`wire`]: serde types for every message, intent URNs, the policy guard,
//!   error bodies and endpoint rules. No I/O.
//!
//! [`IicpError`] is the one error type; [`Secret`] keeps credentials out of logs.

#![warn(missing_docs)]

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod backends;
pub mod client;
pub mod cx;
pub mod directory;
mod error;
mod ids;
mod key_file;
pub mod mesh;
pub mod nat;
pub mod node;
mod outbound;
mod partials;
pub mod proxy;
pub mod relay;
mod secret;
mod server;
mod sync;
pub mod token;
#[cfg(feature = "iicp-tcp")]
pub mod transport;
pub mod wire;

pub use client::{
    ChatChunk, ChatOptions, ChatResponse, ChatStream, ChatStreamEnd, ChatStreamEvent, ChunkChoice,
    ChunkDelta, ClientBuilder, ClientConfig, ClientOptions, CompletionResponse, DiscoverOptions,
    EmbedOptions, EmbedResponse, IicpClient, SelectionStrategy,
};
pub use error::{IicpError, Result};
pub use node::{
    HandlerError, IicpNode, NodeConfig, NodeConfigBuilder, RunningNode, TaskContext, TaskHandler,
};
pub use partials::PartialSink;
pub use secret::Secret;
pub use server::ServerLimits;
pub use server::limits::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};
pub use wire::{ChatMessage, IntentUrn, NodeInfo, NodeList, Qos, TaskRequest, TaskResponse};

/// The README's code blocks, compiled as doc-tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
