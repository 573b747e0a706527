//! [`Peer`]: a peer as the cache keeps it, after its entry was judged.
//!
//! A file of its own so the fuzz crate (`fuzz/`) can mount the cache and
//! the entry judging without the rest of the mesh.

/// A peer this node heard of.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Its identity.
    pub node_id: String,
    /// Its endpoint (`http(s)://host[:port][/path]`, judged by the client's
    /// endpoint rules; no trailing slash).
    pub endpoint: String,
    /// Its region ("" when unknown).
    pub region: String,
    /// When it was last heard of (milliseconds since the Unix epoch; never
    /// later than when we heard it).
    pub last_seen_ms: u64,
    /// Whether it accepts relay binds.
    pub relay_capable: bool,
    /// Its native relay port, when it said.
    pub relay_accept_port: Option<u16>,
    /// Its load (0.0-1.0), when it said.
    pub relay_load: Option<f64>,
}
