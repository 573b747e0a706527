//! Keeping a UPnP mapping alive while the node serves: renew it every
//! `recheck_interval` (well inside its lease), notice when the router's
//! external address changed or the mapping was lost (map again), publish
//! the endpoint that results, and remove the mapping when the node stops.

use super::{Igd, Mapping};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Runs until `stop`, then removes the mapping. Each new endpoint goes to
/// `endpoint` (the lifecycle re-registers with it).
pub async fn keep(
    igd: Igd,
    mut mapping: Mapping,
    port: u16,
    every: Duration,
    endpoint: watch::Sender<String>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
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
