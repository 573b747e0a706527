//! `iicp-node serve`: a provider node until SIGINT/SIGTERM.

use crate::cli::{BackendType, ServeArgs};
use crate::echo;
use iicp_client::{IicpError, IicpNode, NodeConfig};
use std::time::Duration;

pub async fn run(args: ServeArgs) -> iicp_client::Result<()> {
    if args.backend_type != BackendType::Echo {
        return Err(IicpError::InvalidConfig(format!(
            "backend type {:?} is not available in this build yet; use --backend-type echo",
            args.backend_type
        )));
    }
    let models = vec![args.model.clone().unwrap_or_else(|| echo::MODEL.to_owned())];
    let config = NodeConfig {
        endpoint: args.public_endpoint.clone().unwrap_or_default(),
        intent: args.intent.clone(),
        directory_url: args.directory_url.clone(),
        host: args.host.clone(),
        port: args.port,
        region: args.region.clone(),
        node_id: args.node_id.clone(),
        models,
        max_concurrent: args.max_concurrent,
        skip_registration: args.skip_registration,
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_s),
        ..NodeConfig::default()
    };
    let running = IicpNode::new(config).start(echo::handle).await?;
    let registered = if args.skip_registration {
        "not registered (--skip-registration)".to_owned()
    } else {
        tokio::select! {
            id = running.registered() => format!("registered as {} with {}", id.unwrap_or_default(), args.directory_url),
            () = tokio::time::sleep(Duration::from_secs(10)) =>
                format!("not registered yet with {} (retrying in the background)", args.directory_url),
        }
    };
    tracing::info!(
        "iicp-node serving on {} as {} — {registered} — backend echo (demo: replies \"echo: <your message>\")",
        running.local_addr(),
        running.endpoint(),
    );
    iicp_client::node::shutdown_signal().await;
    tracing::info!("shutting down: finishing running tasks, then deregistering");
    running.shutdown().await;
    Ok(())
}
