//! [`Advertised`]: what a node tells the directory about how it is reached,
//! as one value. The node's `endpoint_updates` watch carries it from every
//! part that can change it (the UPnP keeper, the relay worker) to the
//! directory lifecycle, which registers again with each new value.

use crate::wire::{NatType, TransportMethod};
use serde_json::{Map, Value, json};

/// The endpoint a node registers with, and the transport fields that go
/// with it (`transport_method`, `nat_type`, `transport_metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct Advertised {
    /// Base URL consumers `POST {endpoint}/v1/task` to.
    pub endpoint: String,
    /// How the node is reached; `None` leaves the field out (direct).
    pub transport_method: Option<TransportMethod>,
    /// The NAT classification; with a `transport_method` it exempts the
    /// registration from the directory's liveness probe.
    pub nat_type: Option<NatType>,
    /// Transport details (`relay_for`, `relay_host`, `relay_port` for a relay).
    pub transport_metadata: Option<Map<String, Value>>,
}

impl Advertised {
    /// A node reached directly at `endpoint` (no transport fields).
    pub fn direct(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            transport_method: None,
            nat_type: None,
            transport_metadata: None,
        }
    }

    /// A relay worker reached through the relay at `relay_host`, whose HTTP
    /// port is `relay_http_port` (PROTOCOL.md §7.2): endpoint
    /// `http://{relay_host}:{relay_http_port}/v1/relay-for/{worker_id}`,
    /// `transport_method: "turn_relay"`, `nat_type: "symmetric"` (a node
    /// nobody can dial) and `transport_metadata {relay_for, relay_host,
    /// relay_port}`.
    pub fn relayed(relay_host: &str, relay_http_port: u16, worker_id: &str) -> Self {
        let host = if relay_host.contains(':') && !relay_host.starts_with('[') {
            format!("[{relay_host}]")
        } else {
            relay_host.to_owned()
        };
        let metadata = json!({
            "relay_for": worker_id,
            "relay_host": relay_host.trim_matches(['[', ']']),
            "relay_port": relay_http_port,
        });
        Self {
            endpoint: format!("http://{host}:{relay_http_port}/v1/relay-for/{worker_id}"),
            transport_method: Some(TransportMethod::TurnRelay),
            nat_type: Some(NatType::Symmetric),
            transport_metadata: metadata.as_object().cloned(),
        }
    }

    /// True when the node is reached through a relay.
    pub fn is_relayed(&self) -> bool {
        self.transport_method == Some(TransportMethod::TurnRelay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_endpoint_names_the_relay_and_the_worker() {
        let a = Advertised::relayed("203.0.113.9", 8080, "w-1");
        assert_eq!(a.endpoint, "http://203.0.113.9:8080/v1/relay-for/w-1");
        assert!(a.is_relayed());
        let meta = a.transport_metadata.unwrap();
        assert_eq!(meta["relay_for"], "w-1");
        assert_eq!(meta["relay_host"], "203.0.113.9");
        assert_eq!(meta["relay_port"], 8080);
        let v6 = Advertised::relayed("2001:db8::1", 9484, "w");
        assert_eq!(v6.endpoint, "http://[2001:db8::1]:9484/v1/relay-for/w");
        assert_eq!(v6.transport_metadata.unwrap()["relay_host"], "2001:db8::1");
        assert!(!Advertised::direct("http://x:1").is_relayed());
    }
}
