//! `iicp-node serve` flags of the relay server (PROTOCOL.md §7.2): a
//! relay-capable node accepts workers that cannot be reached directly on
//! `--relay-accept-port` and forwards their consumers' tasks.

use clap::Args;
use clap::builder::BoolishValueParser;
use iicp_client::NodeConfig;
use iicp_client::relay::{DEFAULT_RELAY_MAX_SESSIONS, MAX_RELAY_SESSIONS};

/// Relay server options.
#[derive(Debug, Clone, Args)]
pub struct RelayServerArgs {
    /// Be a relay: accept binds of nodes that cannot be reached directly
    /// on --relay-accept-port and forward their tasks
    /// (POST /v1/relay-for/{worker_id}/v1/task on this node's port).
    #[arg(long, env = "IICP_RELAY_CAPABLE", value_parser = BoolishValueParser::new())]
    pub relay_capable: bool,

    /// Port of the relay's native listener for workers, on --host.
    #[arg(long, env = "IICP_RELAY_ACCEPT_PORT", default_value_t = iicp_client::node::DEFAULT_RELAY_ACCEPT_PORT)]
    pub relay_accept_port: u16,

    /// Refuse binds without a valid directory-signed bind ticket (each
    /// ticket binds once). Public relays should set it.
    #[arg(long, env = "IICP_RELAY_REQUIRE_BIND_TICKET", value_parser = BoolishValueParser::new())]
    pub relay_require_bind_ticket: bool,

    /// The directory's Ed25519 key (64 hex characters) to verify bind
    /// tickets with. Default: fetched from the directory's
    /// GET /v1/directory-key when tickets are required; without either,
    /// tickets are not checked.
    #[arg(long, env = "IICP_RELAY_BIND_TICKET_PUBLIC_KEY", value_name = "HEX")]
    pub relay_bind_ticket_public_key: Option<String>,

    /// Workers bound at once; one more gets "relay at session capacity".
    #[arg(long, env = "IICP_RELAY_MAX_SESSIONS", default_value_t = DEFAULT_RELAY_MAX_SESSIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RELAY_SESSIONS as u64))]
    pub relay_max_sessions: usize,
}

impl RelayServerArgs {
    /// Sets the relay fields of `config`.
    pub fn apply(&self, config: &mut NodeConfig) {
        config.relay_capable = self.relay_capable;
        config.relay_accept_port = self.relay_accept_port;
        config.relay_require_bind_ticket = self.relay_require_bind_ticket;
        config.relay_bind_ticket_public_key = self.relay_bind_ticket_public_key.clone();
        config.relay_limits.max_sessions = self.relay_max_sessions;
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use iicp_client::NodeConfig;

    fn serve(args: &[&str]) -> Result<NodeConfig, clap::Error> {
        let cli = Cli::try_parse_from([&["iicp-node", "serve"], args].concat())?;
        let Command::Serve(serve) = cli.command else {
            panic!("serve subcommand");
        };
        let mut config = NodeConfig::default();
        serve.relay.apply(&mut config);
        Ok(config)
    }

    #[test]
    fn relay_flags_reach_the_config() {
        let config = serve(&[]).unwrap();
        assert!(!config.relay_capable && !config.relay_require_bind_ticket);
        assert_eq!(config.relay_accept_port, 9485);
        assert_eq!(config.relay_limits.max_sessions, 256);
        let key = "ab".repeat(32);
        let config = serve(&[
            "--relay-capable",
            "--relay-accept-port=9600",
            "--relay-require-bind-ticket",
            &format!("--relay-bind-ticket-public-key={key}"),
            "--relay-max-sessions=3",
        ])
        .unwrap();
        assert!(config.relay_capable && config.relay_require_bind_ticket);
        assert_eq!(config.relay_accept_port, 9600);
        assert_eq!(config.relay_bind_ticket_public_key.as_deref(), Some(&*key));
        assert_eq!(config.relay_limits.max_sessions, 3);
        assert!(serve(&["--relay-max-sessions=0"]).is_err());
    }
}
