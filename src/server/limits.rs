//! [`ServerLimits`]: how long a connection may take to send its request and
//! how many connections are served at once, for the node and the directory.

use std::time::Duration;

/// Default [`ServerLimits::header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ServerLimits::body_read_timeout`]: 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ServerLimits::max_connections`]: 512, half the usual soft limit
/// of 1024 open files, which leaves room for outbound calls (backend,
/// directory, liveness probes), the listener and log files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Limits of the accept loop shared by the node and the directory. They keep
/// slow or silent clients from holding connections (and file descriptors)
/// forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, counted from the
    /// moment the server waits for them: on a new connection, and again on a
    /// keep-alive connection after each answer (so it is also the idle
    /// keep-alive timeout). The connection is closed when it runs out.
    pub header_read_timeout: Duration,
    /// Time a client has to send a whole request body once its headers are
    /// in. Past it the request gets 408 `request_timeout` (JSON) and the
    /// connection is closed.
    pub body_read_timeout: Duration,
    /// Connections served at once (at least 1). When one more arrives, the
    /// open connection that has waited longest on its client (for a request
    /// or its body, or to read an answer) is closed to make room; only when
    /// every open connection is busy with a request does the new one get a
    /// minimal 503 `IICP-E005` (JSON), closed at once before anything is
    /// read from it. Evicted sockets close a moment after they are chosen,
    /// so up to twice this many may be open for that moment.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}
