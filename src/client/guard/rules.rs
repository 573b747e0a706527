//! The guard's rules for an endpoint's form, with no I/O: why an endpoint is
//! refused ([`GuardRefusal`]) and the URL-level check every discovered
//! endpoint passes before any connection ([`EndpointGuard::check_endpoint`]).
//! The resolver and the redirect policy are in the parent module.
//!
//! No HTTP client types here: the fuzz crate (`fuzz/`) mounts this file as
//! it is.

use crate::wire::endpoint::{EndpointError, NonPublic, check_endpoint_form, parse_endpoint};

/// Appended to every refusal that the operator opt-in would have allowed.
const OPT_IN_HINT: &str = " (allow loopback/private nodes with IICP_PROXY_ALLOW_LOOPBACK_NODES=1 \
                           or the client builder's allow_private_nodes)";

/// Why the guard refused a node endpoint.
///
/// `Display` is a complete sentence for a log line or an
/// `IICP-ENDPOINT-REFUSED` error (PROTOCOL.md §4); it names hosts and
/// origins, never paths or queries, so it carries no request contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardRefusal {
    /// The endpoint URL is unusable (scheme, credentials, no host), or its
    /// literal address or name form is not public.
    #[error("node endpoint refused: {0}{hint}", hint = form_hint(.0))]
    Form(EndpointError),
    /// The host name resolved to at least one non-public address.
    #[error(
        "node endpoint refused: `{host}` resolves to {}{hint}",
        .reason.describe(),
        hint = OPT_IN_HINT
    )]
    Resolved {
        /// The name that was resolved.
        host: String,
        /// What the first non-public address in the answer is.
        reason: NonPublic,
    },
    /// A redirect the guard does not follow; the text says which and why.
    #[error("node redirect refused: {0}")]
    Redirect(String),
}

/// The opt-in hint, for the form refusals the opt-in would lift.
fn form_hint(error: &EndpointError) -> &'static str {
    match error {
        EndpointError::NonPublic(_) => OPT_IN_HINT,
        _ => "",
    }
}

/// The SSRF guard for connections to discovered nodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndpointGuard {
    allow_private: bool,
}

impl EndpointGuard {
    /// A guard; `allow_private` is the operator opt-in that admits loopback,
    /// private, link-local and other non-public nodes.
    pub(crate) fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether the operator opted in to non-public nodes.
    pub(crate) fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// URL-level check before any connection: http/https only, no userinfo,
    /// literal IPs must be public unless `allow_private`, names must not be
    /// local-only (localhost, .local, .internal, …) or bare (no dot) unless
    /// `allow_private`.
    ///
    /// Call this on every endpoint before sending to it: reqwest never asks
    /// the resolver about a literal address, so this is the only place a
    /// literal one is judged (redirect targets are judged by the policy).
    pub(crate) fn check_endpoint(&self, endpoint: &str) -> Result<(), GuardRefusal> {
        let checked = if self.allow_private {
            parse_endpoint(endpoint)
        } else {
            check_endpoint_form(endpoint)
        };
        checked.map(drop).map_err(GuardRefusal::Form)
    }
}
