//! `iicp-node serve`: a provider node until SIGINT/SIGTERM.

use crate::cli::ServeArgs;
use crate::echo;
use iicp_client::backends::{self, BackendOptions};
use iicp_client::{IicpNode, NodeConfig, Secret};
use std::time::Duration;

/// `$IICP_HOME/cx_x25519.key`, IICP_HOME defaulting to `~/.iicp`.
fn default_key_file() -> std::path::PathBuf {
    let home = std::env::var_os("IICP_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".iicp")))
        .unwrap_or_else(|| std::path::PathBuf::from(".iicp"));
    home.join("cx_x25519.key")
}

pub async fn run(args: ServeArgs) -> iicp_client::Result<()> {
    let backend_kind = args.backend_type.engine();
    let models = match (&args.model, backend_kind) {
        (Some(m), _) => vec![m.clone()],
        (None, None) => vec![echo::MODEL.to_owned()],
        (None, Some(_)) => Vec::new(), // probed from the backend
    };
    let mut config = NodeConfig {
        endpoint: args.reach.public_endpoint.clone().unwrap_or_default(),
        reachability: args.reach.config(),
        relay_worker_endpoint: args.reach.relay_worker_endpoint.clone(),
        intent: args.intent.clone(),
        directory_url: args.directory_url.clone(),
        host: args.host.clone(),
        port: args.port,
        region: args.region.clone(),
        node_id: args.node_id.clone(),
        models,
        max_concurrent: args.max_concurrent,
        skip_registration: args.skip_registration,
        native_transport: !args.disable_native_transport,
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_s),
        confidentiality: !args.no_cx,
        cx_key_file: (!args.no_cx)
            .then(|| args.cx_key_file.clone().unwrap_or_else(default_key_file)),
        task_auth: args.task_auth.mode(),
        node_token: args.node_token.clone().map(Secret::new),
        enable_mesh: args.enable_mesh,
        node_hmac_key: args.node_hmac_key.clone().map(Secret::new),
        server_limits: args.server.limits(),
        native_limits: args.native.limits(),
        max_tokens: args.max_tokens,
        max_choices: args.max_choices,
        replay_window_entries: args.replay_window_entries,
        ..NodeConfig::default()
    };
    args.relay.apply(&mut config);
    let node = IicpNode::new(config);
    let (running, backend_desc) = match backend_kind {
        None => (
            node.start(echo::handle).await?,
            "echo (demo: replies \"echo: <your message>\")".to_owned(),
        ),
        Some(kind) => {
            let opts = BackendOptions {
                base_url: args.backend_url.clone(),
                api_key: args.backend_api_key.clone().map(Secret::new),
                model: args.model.clone(),
                max_tokens: args.max_tokens,
                max_choices: args.max_choices,
                ..BackendOptions::default()
            };
            let desc = format!("{kind} at {}", opts.base_for(kind));
            (node.start_backend(backends::build(kind, opts)).await?, desc)
        }
    };
    // Installed before the startup line, so an early SIGTERM is clean.
    let signal = iicp_client::node::shutdown_signal();
    let registered = if args.skip_registration {
        "not registered (--skip-registration)".to_owned()
    } else {
        tokio::select! {
            id = running.registered() => format!("registered as {} with {}", id.unwrap_or_default(), args.directory_url),
            () = tokio::time::sleep(Duration::from_secs(10)) =>
                format!("not registered yet with {} (retrying in the background)", args.directory_url),
        }
    };
    let tier = running.reachability_tier().map_or_else(
        || "reachability detection off".to_owned(),
        |t| format!("tier {t}"),
    );
    let advertised = match (running.is_relay_worker(), running.relay()) {
        (true, Some(relay)) => format!("through the relay at {relay}"),
        (true, None) => "through a relay (not bound yet; retrying in the background)".to_owned(),
        (false, _) => format!("as {}", running.endpoint()),
    };
    let workers = match tokio::runtime::Handle::current().metrics().num_workers() {
        1 => "1 worker thread".to_owned(),
        n => format!("{n} worker threads"),
    };
    tracing::info!(
        "iicp-node serving on {} {advertised} ({tier}) — {registered} — backend {backend_desc} — task auth {} — {workers}",
        running.local_addr(),
        args.task_auth.mode().as_str(),
    );
    running.run_until(signal).await;
    Ok(())
}
