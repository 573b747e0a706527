//! Command-line interface: every flag has an `IICP_*` variable, so the
//! precedence flag > environment > default holds by construction.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// IICP node: run a local directory (more commands arrive with the node,
/// client and demo).
#[derive(Debug, Parser)]
#[command(name = "iicp-node", version, about, long_about = None)]
pub struct Cli {
    /// Log output format. Filter with RUST_LOG (default: info).
    #[arg(long, global = true, env = "IICP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local IICP directory (register, heartbeat, discover) for a mesh
    /// on this machine or network.
    ///
    /// Runs in LOCAL MODE by default: loopback and private node endpoints are
    /// accepted, so nodes on 127.0.0.1 can register. Pass --public for the
    /// public directory's rule (endpoints must resolve to public addresses).
    Directory(DirectoryArgs),
}

/// `iicp-node directory` options.
#[derive(Debug, Args)]
pub struct DirectoryArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, env = "IICP_DIRECTORY_LISTEN", default_value = "127.0.0.1:8020")]
    pub listen: SocketAddr,

    /// Persist registrations in this SQLite file (in memory otherwise).
    #[arg(long, env = "IICP_DIRECTORY_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Refuse loopback, private and local-name endpoints (422 IICP-E035), as
    /// the public directory does. Without it the directory runs in local mode.
    #[arg(long, env = "IICP_DIRECTORY_PUBLIC")]
    pub public: bool,

    /// Do not probe GET {endpoint}/iicp/health before accepting a
    /// registration. For conformance tests that register example hosts.
    #[arg(long, env = "IICP_SKIP_LIVENESS_CHECK")]
    pub skip_liveness_check: bool,

    /// Hide nodes in probation from qos=interactive (fewer than 100
    /// completed tasks) and unproven nodes from qos=realtime.
    #[arg(long, env = "IICP_DIRECTORY_ENFORCE_PROBATION")]
    pub enforce_probation: bool,

    /// Registrations allowed per minute per source address (0: unlimited).
    #[arg(long, env = "IICP_DIRECTORY_REGISTER_RATE_LIMIT", default_value_t = 60)]
    pub register_rate_limit: u32,

    /// Largest request body in bytes (413 above).
    #[arg(long, env = "IICP_DIRECTORY_MAX_BODY_BYTES", default_value_t = iicp_client::directory::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Heartbeat interval told to nodes, in milliseconds.
    #[arg(long, env = "IICP_DIRECTORY_HEARTBEAT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub heartbeat_ms: u64,
}
