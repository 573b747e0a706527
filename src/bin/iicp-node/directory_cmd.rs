//! `iicp-node directory`: a local IICP directory until SIGINT/SIGTERM.

use crate::cli::DirectoryArgs;
use iicp_client::directory::{Database, Directory, DirectoryConfig};
use iicp_client::token::DirectorySigningKey;
use std::path::Path;
use std::time::Duration;

/// The signing key of `--signing-key FILE` (loaded, or created with 0600),
/// or a key generated for this run; with a description for the startup log
/// that names the file but never the secret.
fn signing_key(file: Option<&Path>) -> iicp_client::Result<(DirectorySigningKey, String)> {
    let Some(path) = file else {
        return Ok((
            DirectorySigningKey::generate(),
            "generated in memory for this run (tokens stop verifying after a restart; \
             pass --signing-key FILE to keep it)"
                .to_owned(),
        ));
    };
    // Only for the log line: a concurrent creator makes it say "created"
    // for a key it loaded, nothing worse.
    let existed = path.exists();
    // The error names the file and the cause (key_file.rs).
    let key = DirectorySigningKey::load_or_create(path)?;
    let how = if existed {
        format!("loaded from {}", path.display())
    } else {
        format!("created at {} (mode 0600)", path.display())
    };
    Ok((key, how))
}

/// A CIDR list for the startup line.
fn join(nets: &[iicp_client::directory::IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(args: DirectoryArgs) -> iicp_client::Result<()> {
    let (key, mut key_source) = signing_key(args.signing_key.as_deref())?;
    let offered = key.public_key().to_hex();
    let db = args.db.as_deref().map(Database::parse);
    let config = DirectoryConfig {
        local_mode: !args.public,
        skip_liveness_check: args.skip_liveness_check,
        require_local_liveness: args.require_local_liveness,
        enforce_probation: args.enforce_probation,
        db: db.clone(),
        max_body_bytes: args.max_body_bytes,
        register_rate_limit: args.register_rate_limit,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        signing_key: Some(key),
        server_limits: args.server.limits(),
        trusted_proxies: args.trusted_proxies.clone(),
        probe_allow: args.probe_allow.clone(),
        max_register_body_bytes: args.max_register_body_bytes,
        max_node_bytes: args.max_node_bytes,
        max_nodes: args.max_nodes,
        evict_after: Duration::from_secs(args.evict_after_secs),
        eviction_sweep_interval: Duration::from_secs(args.eviction_sweep_secs),
        ..DirectoryConfig::default()
    };
    let dir = Directory::start(config, args.listen).await?;
    let public_key = dir.public_key().map(|k| k.to_hex()).unwrap_or_default();
    if matches!(db, Some(Database::Postgres(_))) {
        // Replicas on one database sign with the key the first one stored.
        key_source = if public_key == offered {
            format!("{key_source}, stored in the database for every replica")
        } else {
            if args.signing_key.is_some() {
                tracing::warn!(
                    "the key of --signing-key is not used: the database holds the signing key                      every replica shares (remove its store_meta row signing_key to replace it)"
                );
            }
            "shared through the database (stored by the first replica)".to_owned()
        };
    }
    // Installed before the "listening on" line (see shutdown_signal).
    let signal = iicp_client::node::shutdown_signal();
    let mode = if args.public {
        "public mode: endpoints must be publicly routable"
    } else {
        "local mode: loopback and private endpoints accepted"
    };
    let storage = match &db {
        // Display hides a PostgreSQL password.
        Some(db @ Database::Sqlite(_)) => {
            format!("SQLite {db} ({} nodes restored)", dir.restored_nodes())
        }
        Some(db @ Database::Postgres(_)) => {
            format!("PostgreSQL {db} ({} nodes restored)", dir.restored_nodes())
        }
        None => "in memory".to_owned(),
    };
    let proxies = if args.trusted_proxies.is_empty() {
        "none (forwarding headers ignored)".to_owned()
    } else {
        join(&args.trusted_proxies)
    };
    tracing::info!(
        "iicp-node directory listening on {} — directory URL {} — {mode}; liveness probe {}; probation {}; state {storage}; \
         trusted proxies {proxies}; at most {} nodes, evicted after {} s unseen; \
         consumer-token signing key {key_source}, public key {public_key}",
        dir.local_addr(),
        dir.url(),
        if args.skip_liveness_check {
            "OFF"
        } else {
            "on"
        },
        if args.enforce_probation {
            "enforced"
        } else {
            "off"
        },
        args.max_nodes,
        args.evict_after_secs,
    );
    let stop = dir.shutdown_token();
    tokio::spawn(async move {
        signal.await;
        tracing::info!("shutting down directory");
        stop.cancel();
    });
    dir.wait().await;
    Ok(())
}
