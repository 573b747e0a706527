//! [`ReachabilityConfig`]: how a node looks for its reachable endpoint.

use super::{ContainerMode, UpnpOptions};
use std::time::Duration;

/// How a node finds the endpoint it advertises (`NodeConfig::reachability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilityConfig {
    /// Run the ladder at start (`IICP_AUTO_DETECT_NAT`, default on). Off:
    /// the node advertises `http://127.0.0.1:PORT` unless it was given an
    /// endpoint, as before reachability detection existed.
    pub auto_detect: bool,
    /// Container detection (`IICP_CONTAINER`).
    pub container: ContainerMode,
    /// The UPnP rung's timeouts and lease.
    pub upnp: UpnpOptions,
    /// How often a UPnP mapping is renewed and the router's external
    /// address checked; a changed address re-registers the node. Also the
    /// longest a lost mapping goes unnoticed.
    pub recheck_interval: Duration,
}

impl Default for ReachabilityConfig {
    fn default() -> Self {
        Self {
            auto_detect: true,
            container: ContainerMode::Auto,
            upnp: UpnpOptions::default(),
            recheck_interval: Duration::from_secs(300),
        }
    }
}
