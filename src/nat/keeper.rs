//! Keeping a UPnP mapping alive while the node serves: renew it every
//! `recheck_interval` (well inside its lease) and whenever the node's
//! registration fails (`recheck` is notified), notice when the router's
//! external address changed or the mapping was lost (map again), publish
//! the endpoint that results, and remove the mapping when the node stops.

use super::{Igd, Mapping};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What [`keep`] needs besides the mapping.
#[derive(Debug)]
pub struct Keeping {
    /// The serve port (mapped again when the mapping is lost).
    pub port: u16,
    /// Time between checks.
    pub every: Duration,
    /// Receives each new endpoint (the lifecycle re-registers with it).
    pub endpoint: watch::Sender<String>,
    /// Notified when the registration failed: check at once.
    pub recheck: Arc<Notify>,
    /// Ends the loop; the mapping is then removed.
    pub stop: CancellationToken,
}

/// Runs until `k.stop`, then removes the mapping.
pub async fn keep(igd: Igd, mut mapping: Mapping, k: Keeping) {
    let Keeping {
        port,
        every,
        endpoint,
        recheck,
        stop,
    } = k;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = recheck.notified() => {
                tracing::debug!("the registration failed: checking the UPnP mapping now");
            }
            () = stop.cancelled() => break,
        }
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
                    endpoint.send_replace(url);
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
