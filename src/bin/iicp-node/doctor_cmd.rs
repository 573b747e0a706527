//! `iicp-node doctor`: the reachability ladder as it runs here, rung by
//! rung, without serving or registering. A mapping made to test the router
//! is removed again before it exits.

use crate::cli::DoctorArgs;
use iicp_client::nat::{self, NatOptions};
use std::net::IpAddr;

pub async fn run(args: DoctorArgs) -> iicp_client::Result<()> {
    let bind: IpAddr = args.host.trim_matches(['[', ']']).parse().map_err(|_| {
        iicp_client::IicpError::InvalidConfig(format!("host `{}` is not an IP address", args.host))
    })?;
    if !args.reach.auto_detect_nat && args.reach.public_endpoint.is_none() {
        println!(
            "reachability detection is off (IICP_AUTO_DETECT_NAT=false): a node would advertise http://127.0.0.1:{}",
            args.port
        );
        return Ok(());
    }
    let options = NatOptions {
        port: args.port,
        bind,
        public_endpoint: args.reach.public_endpoint.clone(),
        container: args.reach.container.mode(),
        upnp: args.reach.upnp(),
    };
    let found = nat::detect(&options).await;
    println!(
        "reachability ladder for port {} (bound to {bind}):",
        args.port
    );
    for rung in &found.rungs {
        let mark = if rung.chosen { "=>" } else { "  " };
        println!("{mark} {:<32} {}", rung.name, rung.outcome);
    }
    println!();
    println!("tier {}: {}", found.tier, found.reason);
    match &found.endpoint {
        Some(endpoint) => println!("a node would advertise {endpoint}"),
        None => println!("a node would advertise nothing reachable from outside"),
    }
    if let Some(guidance) = &found.guidance {
        println!("to do: {guidance}");
    }
    relay_line(&args, &found).await;
    if let Some(lease) = &found.mapping {
        match nat::release(lease).await {
            Ok(()) => println!("(the test {} was removed from the router)", lease.kind()),
            Err(e) => println!("(could not remove the test mapping: {e})"),
        }
    }
    Ok(())
}

/// What a node would do about a relay: the one the operator named, or at
/// tier 3 the one the directory's relay-capable nodes would elect.
async fn relay_line(args: &DoctorArgs, found: &nat::Reachability) {
    if let Some(named) = &args.reach.relay_worker_endpoint {
        println!("relay: a node would bind at the relay you named, {named}");
        return;
    }
    if found.endpoint.is_some() {
        return;
    }
    if found.tier != nat::Tier::Relay {
        println!(
            "relay: with no endpoint, a node registering with a directory that is not on this machine or LAN elects a relay from it ({})",
            args.directory_url
        );
        return;
    }
    elected(args).await;
}

#[cfg(feature = "iicp-tcp")]
async fn elected(args: &DoctorArgs) {
    match iicp_client::node::preview_relay(
        &args.directory_url,
        &args.intent,
        args.node_id.as_deref(),
    )
    .await
    {
        Ok(Some(relay)) => println!(
            "relay: tier 3 → a node would elect {} (relay node {}) from {}",
            relay.addr(),
            relay.node_id.as_deref().unwrap_or("?"),
            args.directory_url
        ),
        Ok(None) => println!(
            "relay: tier 3, but {} lists no relay-capable node a node could use for {}; set IICP_RELAY_WORKER_ENDPOINT=host:9485",
            args.directory_url, args.intent
        ),
        Err(e) => println!("relay: tier 3, but the directory could not be asked for relays: {e}"),
    }
}

#[cfg(not(feature = "iicp-tcp"))]
async fn elected(_args: &DoctorArgs) {
    println!(
        "relay: tier 3, but this build has no native transport (feature iicp-tcp) to serve through a relay"
    );
}
