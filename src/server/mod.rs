//! Server-side pieces shared by the directory and the node: the accept loop
//! and its limits, JSON error answers, JSON fallbacks for unknown routes,
//! and request reading. Crate-private except [`ServerLimits`].

pub(crate) mod activity;
pub(crate) mod api_error;
mod connection;
pub(crate) mod fallback;
pub mod limits;
pub(crate) mod listen;
pub(crate) mod metrics;
pub(crate) mod request;
pub(crate) mod serve;
mod slots;
pub(crate) mod tracked;

pub(crate) use connection::{DirectAnswer, DirectRoute, NativeHandler};
pub use limits::ServerLimits;
