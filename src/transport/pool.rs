//! [`NativePool`]: native connections kept per transport endpoint and
//! shared by every call to it.
//!
//! A call takes the live connection with the fewest calls in flight; a new
//! connection is opened when every connection carries
//! [`PoolOptions::calls_per_connection`] calls, up to
//! [`PoolOptions::max_connections`] per endpoint (beyond that calls share
//! the least busy one, and the node answers 429 if it is full). Connections
//! that ended (CLOSE from the node, EOF, an error) are dropped at the next
//! call, and ones unused for [`PoolOptions::idle_timeout`] are closed. The
//! pool's lock is never held across an `await`: connecting happens outside
//! it, counted per endpoint so the bound holds while a connection is made.
//!
//! Re-sending rule: a CALL that could not be handed to its connection
//! (which had already ended) is sent once more on a fresh connection, as
//! the node cannot have seen it. A CALL that was handed to a connection
//! that then ended may have run on the node, so it is re-sent (once, on a
//! fresh connection) only when it carries an idempotency key (CALL key 16),
//! which lets the node recognise a repeat; otherwise the caller gets the
//! error. A call that timed out is never re-sent here.

use super::client::{Failure, answer_value};
use super::{Call, NativeClient, NativeOptions, Response};
use crate::error::{IicpError, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

/// How a [`NativePool`] connects and how many connections it keeps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolOptions {
    /// How each connection is made (timeout, INIT node token, max frame).
    pub connection: NativeOptions,
    /// Connections kept per endpoint, at least 1 (default 4).
    pub max_connections: usize,
    /// Calls in flight on one connection before another one is opened
    /// (default 64, a node's default per-connection limit).
    pub calls_per_connection: usize,
    /// A connection without calls for this long is closed (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            connection: NativeOptions::default(),
            max_connections: 4,
            calls_per_connection: 64,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Resolves `host` and `port` to the addresses to connect to.
pub(crate) type Resolver = Arc<
    dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

fn system_resolver() -> Resolver {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

struct Slot {
    client: NativeClient,
    last_used: Instant,
}

#[derive(Default)]
struct Endpoint {
    slots: Vec<Slot>,
    /// Connections being made now (they count against the bound).
    connecting: usize,
    /// Woken when a connection attempt ends.
    settled: Arc<Notify>,
}

/// What a checkout found.
enum Checkout {
    Ready(NativeClient),
    /// A connection slot was reserved: connect, then [`NativePool::settle`].
    Connect,
    /// Every slot is taken by connections still being made: wait for one.
    Wait(Pin<Box<OwnedNotified>>),
}

/// Native connections per endpoint, reused across calls. Cheap to clone;
/// clones share the connections.
#[derive(Clone)]
pub struct NativePool {
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    options: Arc<PoolOptions>,
    resolver: Resolver,
}

impl std::fmt::Debug for NativePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePool")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `host:port` of a transport endpoint (`iicp://host:port`, or `host:port`),
/// split; `iicpsec://` (TLS) is refused, as this client has no TLS for the
/// native transport.
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<(String, String, u16)> {
    let refuse = |why: &str| IicpError::Transport {
        target: format!("native endpoint {endpoint}"),
        reason: why.to_owned(),
    };
    if endpoint.starts_with("iicpsec://") {
        return Err(refuse(
            "iicpsec:// needs TLS, which this client does not speak natively; use HTTPS",
        ));
    }
    let hostport = match endpoint.split_once("://") {
        Some(("iicp", rest)) => rest,
        Some(_) => return Err(refuse("not an iicp:// endpoint")),
        None => endpoint,
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| refuse("no port (iicp://host:port)"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| refuse("the port is not 1..=65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(refuse("the host is empty or not a plain host name"));
    }
    Ok((hostport.to_owned(), host.to_owned(), port))
}

impl NativePool {
    /// An empty pool; connections are made on first use.
    pub fn new(options: PoolOptions) -> Self {
        Self::with_resolver(options, system_resolver())
    }

    /// An empty pool that resolves (and may refuse) hosts with `resolver`.
    pub(crate) fn with_resolver(mut options: PoolOptions, resolver: Resolver) -> Self {
        options.max_connections = options.max_connections.max(1);
        options.calls_per_connection = options.calls_per_connection.max(1);
        Self {
            endpoints: Arc::default(),
            options: Arc::new(options),
            resolver,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Endpoint>> {
        crate::sync::lock(&self.endpoints)
    }

    /// Live connections to `endpoint` now.
    pub fn connections(&self, endpoint: &str) -> usize {
        let Ok((key, ..)) = parse_endpoint(endpoint) else {
            return 0;
        };
        self.lock().get(&key).map_or(0, |e| {
            e.slots.iter().filter(|s| !s.client.is_closed()).count()
        })
    }

    /// A live connection to `endpoint` (`iicp://host:port`), reused or new.
    pub async fn client(&self, endpoint: &str) -> Result<NativeClient> {
        let (key, host, port) = parse_endpoint(endpoint)?;
        self.client_for(&key, &host, port).await
    }

    async fn client_for(&self, key: &str, host: &str, port: u16) -> Result<NativeClient> {
        let deadline = Instant::now() + self.options.connection.timeout;
        loop {
            match self.checkout(key) {
                Checkout::Ready(client) => return Ok(client),
                Checkout::Connect => {
                    let made = self.connect(key, host, port).await;
                    return self.settle(key, made);
                }
                Checkout::Wait(settled) => {
                    let woken = tokio::time::timeout_at(deadline, settled).await;
                    if woken.is_err() {
                        return Err(IicpError::Timeout {
                            what: format!("a connection to iicp://{key}"),
                            elapsed_ms: self.options.connection.timeout.as_millis() as u64,
                        });
                    }
                }
            }
        }
    }

    /// Picks a connection or reserves a slot for a new one (no await here).
    fn checkout(&self, key: &str) -> Checkout {
        let now = Instant::now();
        let idle = self.options.idle_timeout;
        let mut endpoints = self.lock();
        sweep(&mut endpoints, now, idle);
        let entry = endpoints.entry(key.to_owned()).or_default();
        let open = entry.slots.len() + entry.connecting;
        let least = entry
            .slots
            .iter_mut()
            .map(|s| (s.client.in_flight(), s))
            .min_by_key(|(n, _)| *n);
        match least {
            Some((n, slot)) if n < self.options.calls_per_connection => {
                slot.last_used = now;
                Checkout::Ready(slot.client.clone())
            }
            _ if open < self.options.max_connections => {
                entry.connecting += 1;
                Checkout::Connect
            }
            Some((_, slot)) => {
                slot.last_used = now;
                Checkout::Ready(slot.client.clone())
            }
            None => {
                // Registered before the lock is released, so a connection
                // settling in between still wakes this caller.
                let mut settled = Box::pin(entry.settled.clone().notified_owned());
                settled.as_mut().enable();
                Checkout::Wait(settled)
            }
        }
    }

    async fn connect(&self, key: &str, host: &str, port: u16) -> Result<NativeClient> {
        let target = |reason: String| IicpError::Transport {
            target: format!("node at iicp://{key}"),
            reason,
        };
        let addrs = tokio::time::timeout(
            self.options.connection.timeout,
            (self.resolver)(host.to_owned(), port),
        )
        .await
        .map_err(|_| IicpError::Timeout {
            what: format!("resolving {host}"),
            elapsed_ms: self.options.connection.timeout.as_millis() as u64,
        })?
        .map_err(|e| target(format!("not connected: {e}")))?;
        if addrs.is_empty() {
            return Err(target(format!("`{host}` resolved to no address")));
        }
        NativeClient::connect_resolved(key, &addrs, self.options.connection.clone()).await
    }

    /// Records the end of a connection attempt and wakes waiters.
    fn settle(&self, key: &str, made: Result<NativeClient>) -> Result<NativeClient> {
        let mut endpoints = self.lock();
        let entry = endpoints.entry(key.to_owned()).or_default();
        entry.connecting = entry.connecting.saturating_sub(1);
        if let Ok(client) = &made {
            entry.slots.push(Slot {
                client: client.clone(),
                last_used: Instant::now(),
            });
        }
        entry.settled.notify_waiters();
        made
    }

    /// Drops `client` from the pool (it failed); the next call reconnects.
    fn evict(&self, key: &str, client: &NativeClient) {
        let mut endpoints = self.lock();
        if let Some(entry) = endpoints.get_mut(key) {
            entry.slots.retain(|s| !s.client.same_connection(client));
        }
    }

    /// Runs a buffered CALL on a pooled connection to `endpoint` and returns
    /// its result (a refusal is `IicpError::Protocol`). See the module
    /// documentation for when a CALL is re-sent.
    pub async fn call(&self, endpoint: &str, mut call: Call) -> Result<Value> {
        call.task_id = None;
        let limit = call.timeout.map_or(self.options.connection.timeout, |t| {
            t + self.options.connection.timeout
        });
        let answer = self.request(endpoint, call, limit).await?;
        answer_value(endpoint, answer)
    }

    /// Sends a CALL (buffered, or lifecycle when `task_id` is set) on a
    /// pooled connection to `endpoint` and returns its final answer as
    /// received, waiting at most `limit` for it.
    pub async fn request(&self, endpoint: &str, call: Call, limit: Duration) -> Result<Response> {
        self.exchange(endpoint, call, limit)
            .await
            .map_err(Failure::into_error)
    }

    /// [`Self::request`], telling the caller whether the CALL may have
    /// reached the node: `Failure::Unsent` means it did not (no connection,
    /// or none that took it), so another transport may carry it.
    pub(crate) async fn exchange(
        &self,
        endpoint: &str,
        mut call: Call,
        limit: Duration,
    ) -> std::result::Result<Response, Failure> {
        let (key, host, port) = parse_endpoint(endpoint).map_err(Failure::Unsent)?;
        // One id for both tries, so a node that saw the first can match.
        call.call_id.get_or_insert_with(crate::ids::uuid_v4_string);
        let deadline = Instant::now() + limit;
        let mut retried = false;
        loop {
            let client = self
                .client_for(&key, &host, port)
                .await
                .map_err(Failure::Unsent)?;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = client.exchange(call.clone(), left).await;
            let resend = match &outcome {
                Ok(_) | Err(Failure::TimedOut(_)) => return outcome,
                Err(Failure::Unsent(_)) => true,
                Err(Failure::Lost(_)) => call.idempotency_key.is_some(),
            };
            self.evict(&key, &client);
            if retried || !resend || Instant::now() >= deadline {
                return outcome;
            }
            tracing::debug!(endpoint = %key, "native connection ended; sending the call once more on a new one");
            retried = true;
        }
    }

    /// A fresh connection to `endpoint`, resolved (and judged) as pooled
    /// ones are but kept out of the pool: a streamed call that its consumer
    /// may abandon gets one of its own, so closing it cancels that call
    /// alone (the node aborts a session's calls on CLOSE or end of stream).
    pub(crate) async fn dedicated(&self, endpoint: &str) -> Result<NativeClient> {
        let (key, host, port) = parse_endpoint(endpoint)?;
        self.connect(&key, &host, port).await
    }

    /// Sends CLOSE on every pooled connection and forgets them all.
    pub fn close_all(&self) {
        let mut endpoints = self.lock();
        for entry in endpoints.values() {
            for slot in &entry.slots {
                slot.client.close_now();
            }
        }
        endpoints.retain(|_, e| e.connecting > 0);
        for entry in endpoints.values_mut() {
            entry.slots.clear();
        }
    }
}

/// Drops ended connections and closes idle ones, everywhere; forgets
/// endpoints left with nothing.
fn sweep(endpoints: &mut HashMap<String, Endpoint>, now: Instant, idle: Duration) {
    for entry in endpoints.values_mut() {
        entry.slots.retain(|s| {
            if s.client.is_closed() {
                return false;
            }
            let expired = s.client.in_flight() == 0 && now.duration_since(s.last_used) >= idle;
            if expired {
                s.client.close_now();
            }
            !expired
        });
    }
    endpoints.retain(|_, e| !e.slots.is_empty() || e.connecting > 0);
}
