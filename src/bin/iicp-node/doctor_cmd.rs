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
    if let Some(lease) = &found.mapping {
        match nat::release(lease).await {
            Ok(()) => println!("(the test {} was removed from the router)", lease.kind()),
            Err(e) => println!("(could not remove the test mapping: {e})"),
        }
    }
    Ok(())
}
