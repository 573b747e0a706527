//! `iicp-node proxy`: the OpenAI/Anthropic/Ollama gateway until
//! SIGINT/SIGTERM.

use crate::cli::ProxyArgs;
use crate::consumer_cmd;
use iicp_client::IicpError;
use iicp_client::proxy::{Proxy, ProxyConfig};
use std::net::{IpAddr, SocketAddr};

pub async fn run(args: ProxyArgs) -> iicp_client::Result<()> {
    let host: IpAddr = args.host.trim_matches(['[', ']']).parse().map_err(|_| {
        IicpError::InvalidConfig(format!("--host `{}` is not an IP address", args.host))
    })?;
    let mut config = ProxyConfig::new(SocketAddr::new(host, args.port));
    config.allow_remote = args.allow_remote;
    config.max_body_bytes = args.max_body_bytes;
    let client = consumer_cmd::client(&args.mesh)?;
    let plaintext = client.options().allow_plaintext;
    let proxy = Proxy::start(config, client).await?;
    // Installed before the "listening on" line (see shutdown_signal).
    let signal = iicp_client::node::shutdown_signal();
    tracing::info!(
        "iicp-node proxy listening on {} — OpenAI base URL {}, Anthropic and Ollama base URL {} — \
         directory {}; {}",
        proxy.local_addr(),
        proxy.openai_base_url(),
        proxy.url(),
        args.mesh.directory_url,
        if plaintext {
            "plaintext allowed to nodes without a CX key (chats stream token by token)"
        } else {
            "payloads sealed with IICP-CX (streamed answers come as one chunk)"
        },
    );
    let stop = proxy.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down proxy");
        stop.cancel();
    });
    proxy.wait().await;
    Ok(())
}
