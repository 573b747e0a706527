//! INIT and ACK: the handshake that opens a native session (PROTOCOL.md §7.1
//! "Handshake").
//!
//! The peers send `INIT {1: 1}` and answer `ACK {1: 1, 2: node_id}`; the
//! spec's INIT adds keys 2–7, which we read and write.

use crate::Secret;
use crate::transport::cbor::{Fields, MapWriter, from_json};
use crate::transport::kind;

use super::{MessageError, map_message};

/// INIT (0x01): the client's opening message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Init {
    /// Key 1: the highest protocol version the client speaks.
    pub version: Option<u64>,
    /// Key 2: the lowest version it accepts.
    pub min_version: Option<u64>,
    /// Key 3: the client's node id, when it is a node.
    pub node_id: Option<String>,
    /// Key 4: the node token, checked in the node's `token` auth mode.
    pub node_token: Option<Secret>,
    /// Key 5: the client's capabilities (no fixed shape; kept as JSON).
    pub capabilities: Option<serde_json::Value>,
    /// Key 6: compression schemes the client accepts (a single text string
    /// on input reads as a list of one).
    pub compression: Option<Vec<String>>,
    /// Key 7: the largest frame payload the client accepts.
    pub max_frame_size: Option<u64>,
}

map_message!(Init, kind::INIT);

impl Init {
    /// The plain INIT the reference peers send: `{1: version}`.
    pub fn with_version(version: u64) -> Self {
        Self {
            version: Some(version),
            ..Self::default()
        }
    }

    /// The version to answer with, given the versions we speak
    /// (`ours_min..=ours_max`): the highest both sides speak, or `None` for a
    /// CLOSE `version_mismatch`. A missing key 1 means version 1; a missing
    /// key 2 means the client accepts only its key 1.
    pub fn choose_version(&self, ours_min: u64, ours_max: u64) -> Option<u64> {
        let theirs_max = self.version.unwrap_or(1);
        let theirs_min = self.min_version.unwrap_or(theirs_max).min(theirs_max);
        let chosen = theirs_max.min(ours_max);
        (chosen >= theirs_min.max(ours_min)).then_some(chosen)
    }

    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(Self {
            version: f.uint(1, "version")?,
            min_version: f.uint(2, "min_version")?,
            node_id: f.id(3, "node_id")?,
            node_token: f.text(4, "node_token")?.map(Secret::new),
            capabilities: f.json(5, "capabilities")?,
            compression: f.text_list(6, "compression")?,
            max_frame_size: f.uint(7, "max_frame_size")?,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.version)
            .opt(2, self.min_version)
            .opt(3, self.node_id.clone())
            .opt(4, self.node_token.as_ref().map(|t| t.expose().to_owned()))
            .opt(5, self.capabilities.as_ref().map(from_json))
            .opt(
                6,
                self.compression.as_ref().map(|list| {
                    ciborium::Value::Array(list.iter().map(|s| s.as_str().into()).collect())
                }),
            )
            .opt(7, self.max_frame_size);
    }
}

/// ACK (0x02): the node's answer to INIT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ack {
    /// Key 1: the chosen protocol version.
    pub version: Option<u64>,
    /// Key 2: the node's id.
    pub node_id: Option<String>,
}

map_message!(Ack, kind::ACK);

impl Ack {
    fn read(f: &mut Fields) -> Result<Self, MessageError> {
        Ok(Self {
            version: f.uint(1, "version")?,
            node_id: f.id(2, "node_id")?,
        })
    }

    fn write(&self, w: &mut MapWriter) {
        w.opt(1, self.version).opt(2, self.node_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        // The peers' plain {1: 1}.
        assert_eq!(Init::with_version(1).choose_version(1, 1), Some(1));
        // An empty INIT means version 1.
        assert_eq!(Init::default().choose_version(1, 2), Some(1));
        // A newer client that also accepts 1.
        let newer = Init {
            version: Some(3),
            min_version: Some(1),
            ..Init::default()
        };
        assert_eq!(newer.choose_version(1, 2), Some(2));
        // A client that only speaks 3.
        assert_eq!(Init::with_version(3).choose_version(1, 2), None);
        // A client too old for us.
        assert_eq!(Init::with_version(1).choose_version(2, 2), None);
    }

    #[test]
    fn the_node_token_never_reaches_debug_output() {
        let init = Init {
            node_token: Some(Secret::new("tok-secret")),
            ..Init::default()
        };
        assert!(!format!("{init:?}").contains("tok-secret"));
        let back = Init::decode(&init.encode()).unwrap();
        assert_eq!(back.node_token.unwrap().expose(), "tok-secret");
    }
}
