//! The UPnP rung's timeouts and lease (compiled with or without the `nat`
//! feature, so a configuration names them either way).

use std::time::Duration;

/// Timeouts and lease of the UPnP rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpnpOptions {
    /// How long to wait for an IGD to answer the search, per interface.
    pub search_timeout: Duration,
    /// How long one SOAP call may take.
    pub call_timeout: Duration,
    /// The lease asked for; the mapping is renewed well before it ends.
    pub lease: Duration,
}

impl Default for UpnpOptions {
    fn default() -> Self {
        Self {
            search_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(3600),
        }
    }
}
