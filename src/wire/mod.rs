//! The IICP wire protocol as serde types: every message the SDK sends or
//! receives, intent URNs, the policy guard, error bodies and endpoint rules.
//!
//! This layer does no I/O and knows nothing of tokio or HTTP clients; every
//! other layer shares these types instead of re-declaring message shapes.
//! Unknown fields survive in `extra` maps (lenient on input); optional fields
//! that the spec defines are emitted (spec-complete on output).

pub mod chat;
pub mod completion;
pub mod discover;
pub mod embedding;
pub mod endpoint;
pub mod error_body;
pub mod heartbeat;
pub mod intent;
mod json_text;
mod lenient;
pub mod policy;
pub mod qos;
pub mod register;
pub mod task;
mod task_response_de;

pub use chat::{
    ChatChoice, ChatCompletion, ChatCompletionMessage, ChatMessage, ChatUsage, MessageContent,
};
pub use completion::{CompletionChoice, TextCompletion};
pub use discover::{Bootstrap, DiscoverQuery, NodeInfo, NodeList, PeerInfo};
pub use embedding::{Embedding, EmbeddingInput, EmbeddingList, EmbeddingRequest, EmbeddingUsage};
pub use error_body::{ErrorBody, ErrorDetail, ParsedError, parse_error_body};
pub use heartbeat::{HeartbeatMetrics, HeartbeatRequest, Pong};
pub use intent::{IntentError, IntentUrn};
pub(crate) use json_text::from_json_bytes;
pub use policy::{PolicyViolation, check_intent_policy};
pub use qos::Qos;
pub use register::{
    BackendFlavour, Capability, CxPublicKey, DeregisterAck, DeregisterRequest, ExposureMode,
    Modality, NatType, NodeLimits, Pricing, RegisterAck, RegisterRequest, TransportMethod,
};
pub use task::{
    TaskAuth, TaskConstraints, TaskError, TaskMetrics, TaskRequest, TaskResponse, TaskStatus,
};
