//! `NodeConfigBuilder`: [`NodeConfig`] set field by field, so code written
//! against it keeps compiling when fields are added, and checked by
//! [`NodeConfig::validate`] when built.

use super::{NativeLimits, NodeConfig, TaskAuthMode};
use crate::secret::Secret;
use crate::server::ServerLimits;
use crate::wire::BackendFlavour;
use std::path::PathBuf;
use std::time::Duration;

/// Builds a [`NodeConfig`]; start with [`NodeConfig::builder`]. Each setter
/// sets the field of the same name (see there for its meaning).
#[derive(Debug, Clone)]
#[must_use]
pub struct NodeConfigBuilder {
    config: NodeConfig,
}

/// Setters for plain fields, and for `Option` fields (which they set to `Some`).
macro_rules! setters {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Sets [`NodeConfig::", stringify!($name), "`].")]
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.config.$name = value.into();
            self
        }
    )*};
}
macro_rules! optional_setters {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Sets [`NodeConfig::", stringify!($name), "`] to `Some(value)`.")]
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.config.$name = Some(value.into());
            self
        }
    )*};
}

impl NodeConfigBuilder {
    pub(super) fn new(config: NodeConfig) -> Self {
        Self { config }
    }

    setters! {
        endpoint: String,
        intent: String,
        relay_capable: bool,
        relay_accept_port: u16,
        relay_require_bind_ticket: bool,
        relay_limits: crate::relay::RelayLimits,
        enable_mesh: bool,
        mesh_interval: Duration,
        directory_url: String,
        host: String,
        port: u16,
        models: Vec<String>,
        max_concurrent: u32,
        tokens_per_min: u64,
        skip_registration: bool,
        max_body_bytes: usize,
        default_task_timeout: Duration,
        shutdown_grace: Duration,
        confidentiality: bool,
        task_auth: TaskAuthMode,
        server_limits: ServerLimits,
        replay_window_entries: usize,
        max_tokens: u64,
        max_choices: u64,
        native_transport: bool,
        native_limits: NativeLimits,
        reachability: crate::nat::ReachabilityConfig,
    }

    optional_setters! {
        region: String,
        node_id: String,
        backend: BackendFlavour,
        node_token: Secret,
        node_hmac_key: Secret,
        cx_key_file: PathBuf,
        relay_worker_endpoint: String,
        relay_bind_ticket_public_key: String,
    }

    /// The configuration, checked with [`NodeConfig::validate`].
    pub fn build(self) -> crate::Result<NodeConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_the_literal_builds_and_refuses_what_cannot_work() {
        let built = NodeConfig::builder()
            .directory_url("http://127.0.0.1:8020/api")
            .region("eu-central")
            .max_concurrent(8u32)
            .build()
            .unwrap();
        assert_eq!(
            built,
            NodeConfig {
                directory_url: "http://127.0.0.1:8020/api".into(),
                region: Some("eu-central".into()),
                max_concurrent: 8,
                ..Default::default()
            }
        );
        for (builder, says) in [
            (
                NodeConfig::builder().directory_url("not a url"),
                "directory_url",
            ),
            (NodeConfig::builder().directory_url("ftp://x/api"), "http"),
            (NodeConfig::builder().intent("chat"), "intent"),
            (
                NodeConfig::builder().endpoint("http://x.example/?q=1"),
                "endpoint",
            ),
            (NodeConfig::builder().host("localhost"), "host"),
            (NodeConfig::builder().node_id("no spaces"), "node_id"),
            (NodeConfig::builder().max_concurrent(0u32), "max_concurrent"),
        ] {
            let err = builder.build().unwrap_err();
            assert!(err.to_string().contains(says), "{says}: {err}");
        }
        // Without registration the directory URL is not used.
        NodeConfig::builder()
            .skip_registration(true)
            .directory_url("")
            .build()
            .unwrap();
    }
}
