//! `iicp-node chat` and `iicp-node discover`: the consumer from the command
//! line. The reply goes to stdout; logs and errors go to stderr.

use crate::cli::{ChatArgs, ConsumerArgs, DiscoverArgs};
use iicp_client::{ChatMessage, ChatOptions, ClientConfig, DiscoverOptions, IicpClient, IicpError};
use std::net::IpAddr;

/// Whether the directory URL points at this machine (a local mesh).
fn directory_is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .is_some_and(|u| match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        })
}

pub fn client(mesh: &ConsumerArgs) -> iicp_client::Result<IicpClient> {
    IicpClient::builder(ClientConfig {
        directory_url: mesh.directory_url.clone(),
        timeout_ms: mesh.timeout_ms,
        region: mesh.region.clone(),
        node_token: mesh.node_token.clone().map(Into::into),
    })
    .with_env()
    .allow_private_nodes(mesh.allow_private_nodes || directory_is_loopback(&mesh.directory_url))
    .allow_plaintext(mesh.allow_plaintext)
    .build()
}

fn json_out(value: &impl serde::Serialize) -> iicp_client::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| IicpError::Decode {
        what: "the reply".into(),
        reason: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

pub async fn chat(args: ChatArgs) -> iicp_client::Result<()> {
    let client = client(&args.mesh)?;
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(ChatMessage::system(system.as_str()));
    }
    messages.push(ChatMessage::user(args.prompt.as_str()));
    let reply = client
        .chat(
            messages,
            Some(ChatOptions {
                timeout_ms: Some(args.mesh.timeout_ms),
                model: args.model.clone(),
                temperature: args.temperature,
                max_tokens: args.max_tokens,
                ..Default::default()
            }),
        )
        .await?;
    if args.json {
        json_out(&reply)
    } else {
        println!("{}", reply.choices[0].message.content);
        Ok(())
    }
}

pub async fn discover(args: DiscoverArgs) -> iicp_client::Result<()> {
    let client = client(&args.mesh)?;
    let list = client
        .discover(
            &args.intent,
            Some(DiscoverOptions {
                region: args.mesh.region.clone(),
                model: args.model.clone(),
                min_reputation: None,
                limit: args.limit,
            }),
            None,
        )
        .await?;
    if args.json {
        return json_out(&list);
    }
    if list.nodes.is_empty() {
        println!(
            "no node serves {} at {}",
            args.intent, args.mesh.directory_url
        );
        return Ok(());
    }
    println!(
        "{:<38} {:>6} {:>5} {:<12} {:<32} MODELS",
        "NODE", "SCORE", "LOAD", "REGION", "ENDPOINT"
    );
    for n in &list.nodes {
        println!(
            "{:<38} {:>6.3} {:>5.2} {:<12} {:<32} {}",
            n.node_id,
            n.score,
            n.load.unwrap_or(0.0),
            if n.region.is_empty() { "-" } else { &n.region },
            n.endpoint,
            n.models.join(",")
        );
    }
    Ok(())
}
