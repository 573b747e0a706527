//! Keeping what the router holds for us alive while the node serves, and
//! removing it when the node stops:
//!
//! - a UPnP mapping (tier 1a) is renewed every `recheck_interval` (well
//!   inside its lease) and whenever the node's registration fails (`recheck`
//!   is notified); a changed external address or a lost mapping maps again,
//!   and the endpoint that results is published;
//! - an IPv6 pinhole (tier 1b) is renewed with `UpdatePinhole` on the same
//!   schedule; when the router no longer knows it, it is opened again (the
//!   endpoint, our own address, stays).

use super::{Advertised, FirewallControl, Igd, Lease, Mapping, Pinhole};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What [`keep`] needs besides the lease.
#[derive(Debug)]
pub struct Keeping {
    /// The serve port (mapped again when the mapping is lost).
    pub port: u16,
    /// Time between checks.
    pub every: Duration,
    /// Receives each new endpoint (the lifecycle re-registers with it).
    pub endpoint: watch::Sender<Advertised>,
    /// Notified when the registration failed: check at once.
    pub recheck: Arc<Notify>,
    /// Ends the loop; the mapping or pinhole is then removed.
    pub stop: CancellationToken,
}

/// Runs until `k.stop`, then removes the mapping or pinhole.
pub async fn keep(lease: Lease, k: Keeping) {
    match lease {
        Lease::Mapping(igd, mapping) => keep_mapping(igd, mapping, k).await,
        Lease::Pinhole(control, pinhole) => keep_pinhole(control, pinhole, k).await,
    }
}

/// Waits for the next check: `every`, or at once when a registration
/// failed. `false` when the node stops.
async fn next_check(
    every: Duration,
    recheck: &Notify,
    stop: &CancellationToken,
    what: &str,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(every) => true,
        () = recheck.notified() => {
            tracing::debug!("the registration failed: checking the {what} now");
            true
        }
        () = stop.cancelled() => false,
    }
}

async fn keep_mapping(igd: Igd, mut mapping: Mapping, k: Keeping) {
    let Keeping {
        port,
        every,
        endpoint,
        recheck,
        stop,
    } = k;
    while next_check(every, &recheck, &stop, "UPnP mapping").await {
        let renewed = match igd.renew(&mapping).await {
            Ok(m) => Ok(m),
            Err(why) => {
                tracing::warn!(reason = %why, "the UPnP mapping could not be renewed; mapping again");
                igd.map(port).await
            }
        };
        match renewed {
            Ok(m) => {
                if m != mapping {
                    let url = super::url_of(m.external_ip, m.external_port);
                    tracing::info!(endpoint = %url, was = %super::url_of(mapping.external_ip, mapping.external_port), "the router's external address or port changed; registering again");
                    endpoint.send_replace(Advertised::direct(url));
                }
                mapping = m;
            }
            Err(why) => {
                tracing::warn!(reason = %why, "the UPnP mapping is lost; consumers cannot reach this node until it is back (retrying)");
            }
        }
    }
    match igd.unmap(&mapping).await {
        Ok(()) => tracing::info!(
            external_port = mapping.external_port,
            "removed the UPnP mapping from the router"
        ),
        Err(why) => {
            tracing::warn!(reason = %why, "could not remove the UPnP mapping; it expires with its lease")
        }
    }
}

async fn keep_pinhole(control: FirewallControl, mut pinhole: Pinhole, k: Keeping) {
    let Keeping {
        every,
        recheck,
        stop,
        ..
    } = k;
    while next_check(every, &recheck, &stop, "IPv6 pinhole").await {
        let Err(why) = control.update(&pinhole).await else {
            tracing::debug!(id = pinhole.id, "renewed the IPv6 pinhole");
            continue;
        };
        tracing::warn!(reason = %why, "the IPv6 pinhole could not be renewed; opening it again");
        match control.add(pinhole.port).await {
            Ok(p) => {
                tracing::info!(id = p.id, "opened the IPv6 pinhole again");
                pinhole = p;
            }
            Err(why) => tracing::warn!(
                reason = %why,
                "the IPv6 pinhole is lost; consumers cannot reach this node until it is back (retrying)"
            ),
        }
    }
    match control.delete(&pinhole).await {
        Ok(()) => tracing::info!(
            id = pinhole.id,
            port = pinhole.port,
            "removed the IPv6 pinhole from the router"
        ),
        Err(why) => {
            tracing::warn!(reason = %why, "could not remove the IPv6 pinhole; it expires with its lease")
        }
    }
}
