//! Server-side HTTP pieces shared by the directory and the node: JSON error
//! answers, JSON fallbacks for unknown routes, and request reading.
//! Crate-private.

pub(crate) mod api_error;
pub(crate) mod fallback;
pub(crate) mod request;
