//! The node's endpoint, from the reachability ladder (`crate::nat`): which
//! URL it advertises, whether it registers at all, and the UPnP mapping to
//! keep. An operator's endpoint is trusted as given (tier 0). An endpoint
//! the ladder could not verify is never advertised to a directory that is
//! not on this machine or LAN: the node then serves locally, does not
//! register, and logs what the operator can do.

use super::NodeConfig;
use super::listener::default_endpoint;
use crate::nat::{self, Lease, NatOptions, Reachability, Tier};
use crate::wire::endpoint::{NonPublic, classify_ip};
use std::net::{IpAddr, SocketAddr};

/// What the ladder decided for this start.
pub(crate) struct Resolved {
    /// The endpoint to advertise.
    pub endpoint: String,
    /// False when the endpoint was not verified and the directory is not
    /// local: registering it would list an unreachable node.
    pub register: bool,
    /// The tier, when the ladder ran.
    pub tier: Option<Tier>,
    /// The UPnP mapping to keep and remove.
    pub lease: Option<Lease>,
    /// The ladder found no endpoint a consumer of this directory could
    /// reach: serve through an elected relay (tier 3, `crate::relay`).
    pub relay: bool,
}

/// Runs the ladder for a node bound to `local` (unless it is off) and logs
/// the one startup line about it.
pub(crate) async fn resolve(cfg: &NodeConfig, local: SocketAddr) -> Resolved {
    let explicit = !cfg.endpoint.is_empty();
    if !explicit && !cfg.reachability.auto_detect {
        return Resolved {
            endpoint: default_endpoint(local),
            register: true,
            tier: None,
            lease: None,
            relay: false,
        };
    }
    let options = NatOptions {
        port: local.port(),
        bind: local.ip(),
        public_endpoint: explicit.then(|| cfg.endpoint.trim_end_matches('/').to_owned()),
        container: cfg.reachability.container,
        upnp: cfg.reachability.upnp,
    };
    let found = nat::detect(&options).await;
    log(&found, local.ip().is_loopback());
    let Reachability {
        tier,
        endpoint,
        mapping,
        ..
    } = found;
    match endpoint {
        Some(endpoint) => Resolved {
            endpoint,
            register: true,
            tier: Some(tier),
            lease: mapping,
            relay: false,
        },
        None => {
            let register = directory_is_local(&cfg.directory_url);
            let relay = relay_reaches(cfg, tier, register);
            if relay {
                tracing::info!(
                    tier = Tier::Relay.label(),
                    "NAT tier={}: auto-electing relay from directory...",
                    Tier::Relay
                );
            } else if !register && !cfg.skip_registration {
                tracing::warn!(
                    directory = %cfg.directory_url,
                    "not registering: this node has no endpoint the directory's consumers could reach (see the guidance above); serving locally"
                );
            }
            Resolved {
                endpoint: default_endpoint(local),
                register,
                tier: Some(if relay { Tier::Relay } else { tier }),
                lease: None,
                relay,
            }
        }
    }
}

/// Whether a node the ladder left without an endpoint should serve through
/// an elected relay: when the ladder ended at tier 3 (carrier-grade NAT), or
/// when nothing worked and the directory is not local (its consumers could
/// not reach a LAN address). Never for a relay itself, a node that does not
/// register, or a build without the native transport (said at warn).
fn relay_reaches(cfg: &NodeConfig, tier: Tier, directory_local: bool) -> bool {
    let wanted =
        !cfg.relay_capable && !cfg.skip_registration && (tier == Tier::Relay || !directory_local);
    if wanted && !cfg!(feature = "iicp-tcp") {
        tracing::warn!(
            "NAT tier={tier}: a relay would reach this node, but this build has no native transport (feature iicp-tcp)"
        );
        return false;
    }
    wanted
}

/// The tier line, and the guidance at warn, except for a node bound to
/// loopback on purpose (a local mesh, a demo, a test), where it is no news.
fn log(found: &Reachability, loopback: bool) {
    let endpoint = found.endpoint.as_deref().unwrap_or("none");
    tracing::info!(
        tier = found.tier.label(),
        endpoint,
        "reachability: tier {} — {}",
        found.tier,
        found.reason
    );
    for rung in &found.rungs {
        tracing::debug!(rung = rung.name, chosen = rung.chosen, "{}", rung.outcome);
    }
    match &found.guidance {
        Some(guidance) if !loopback => {
            tracing::warn!("reachability tier {}: {guidance}", found.tier);
        }
        Some(guidance) => tracing::debug!("reachability tier {}: {guidance}", found.tier),
        None => {}
    }
}

/// Whether the directory is on this machine or a private network (loopback,
/// RFC 1918, link-local, IPv6 ULA, as `wire::endpoint` classifies them), where a loopback or LAN endpoint is what
/// its consumers can reach. Carrier-grade NAT space (100.64.0.0/10) is the
/// provider's network, not ours: it does not count.
pub(crate) fn directory_is_local(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let ip = match url.host() {
        Some(url::Host::Domain(d)) => return d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        None => return false,
    };
    matches!(
        classify_ip(ip),
        Some(NonPublic::Loopback | NonPublic::Private | NonPublic::LinkLocal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_directories_are_told_from_public_ones() {
        for (url, local) in [
            ("http://127.0.0.1:8020/api", true),
            ("http://localhost:8020", true),
            ("http://192.168.1.5:8020", true),
            ("http://[::1]:8020", true),
            ("http://[fd00::5]:8020", true),
            ("https://directory.iicp.network/api", false),
            ("http://11.77.5.2:8020/api", false),
            ("http://100.64.7.2:8020/api", false),
            ("not a url", false),
        ] {
            assert_eq!(directory_is_local(url), local, "{url}");
        }
    }
}
