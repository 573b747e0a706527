//! The consumer's SSRF guard for connections to *discovered nodes*
//! (PROTOCOL.md §5.1 step 4; policy and vectors in `endpoint-security-v1.json`).
//!
//! The directory hands out endpoints that anyone may have registered, so a
//! node URL is untrusted input: without a guard, a consumer could be steered
//! into its own loopback services, its LAN or a cloud metadata address. This
//! module owns three checks, all built on the pure rules of
//! [`crate::wire::endpoint`]:
//!
//! - [`EndpointGuard::check_endpoint`]: the URL form before any connection
//!   (http/https, no credentials, public literal address, no local-only or
//!   bare name).
//! - A DNS resolver, installed by [`EndpointGuard::apply`], that judges the
//!   *whole* answer on every new connection: one non-public address refuses
//!   the lot, so a mixed answer or a later rebinding to a private address
//!   gains nothing. reqwest connects to the judged addresses while TLS still
//!   verifies the original host name.
//! - A redirect policy, also installed by `apply`: only 307/308, only to the
//!   same origin, at most [`MAX_REDIRECTS`].
//!
//! The operator opt-in (`IICP_PROXY_ALLOW_LOOPBACK_NODES=1` or the client
//! builder's `allow_private_nodes`) lifts the routability checks, for
//! development meshes on one machine or one LAN; the form and redirect rules
//! stay. The directory connection is not guarded here: its URL comes from the
//! operator, not from the network.

use crate::wire::endpoint::{EndpointError, check_resolved, classify_name};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

mod rules;

pub(crate) use rules::{EndpointGuard, GuardRefusal};

/// The most redirects one request may follow (endpoint-security-v1 policy:
/// "maximum 3").
pub(crate) const MAX_REDIRECTS: usize = 3;

/// Resolves a host name to its addresses. Injectable so tests can play a
/// DNS server that lies; production uses [`system_lookup`].
type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;
/// The future a [`Lookup`] returns.
type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// The production lookup: the system resolver, through tokio.
fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in place.
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|addr| addr.ip()).collect())
        })
    })
}

impl EndpointGuard {
    /// Installs the guarded DNS resolver and the redirect policy on a
    /// reqwest ClientBuilder.
    ///
    /// It also turns off proxies: through a proxy, the proxy resolves the
    /// node's name and the resolver here would only ever see the proxy's.
    /// Do not add `resolve`/`resolve_to_addrs` overrides afterwards, they
    /// bypass the resolver.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.apply_with_lookup(builder, system_lookup())
    }

    /// [`Self::apply`] with the name lookup supplied by the caller.
    fn apply_with_lookup(
        &self,
        builder: reqwest::ClientBuilder,
        lookup: Lookup,
    ) -> reqwest::ClientBuilder {
        let guard = *self;
        builder
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { guard, lookup }))
            .redirect(Policy::custom(move |attempt| {
                match guard.check_redirect(
                    attempt.status().as_u16(),
                    attempt.url(),
                    attempt.previous(),
                ) {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => attempt.error(refusal),
                }
            }))
    }

    /// Decides whether to follow one redirect; pure, so the redirect vectors
    /// can run without a server.
    ///
    /// `previous` holds the URLs requested so far, the original first and the
    /// one that answered with this redirect last (as reqwest passes them).
    /// Only 307 and 308 are followed: 301/302/303 let the client turn the task
    /// POST into a body-less GET. Only the same origin (scheme, host, port) is
    /// followed, at most [`MAX_REDIRECTS`] times, and the target must pass
    /// [`Self::check_endpoint`], which judges a literal address. A target name
    /// is judged again by the resolver if the redirect opens a new connection.
    pub(crate) fn check_redirect(
        &self,
        status: u16,
        target: &Url,
        previous: &[Url],
    ) -> Result<(), GuardRefusal> {
        let Some(from) = previous.last() else {
            return Err(GuardRefusal::Redirect(
                "a redirect without an originating request".to_owned(),
            ));
        };
        let from_origin = from.origin().ascii_serialization();
        if !matches!(status, 307 | 308) {
            return Err(GuardRefusal::Redirect(format!(
                "HTTP {status} from {from_origin} is not followed; only 307 and 308 keep the \
                 method and body"
            )));
        }
        // `previous` counts the original request plus every redirect already
        // followed, so this one would be redirect number `previous.len()`.
        if previous.len() > MAX_REDIRECTS {
            return Err(GuardRefusal::Redirect(format!(
                "more than {MAX_REDIRECTS} redirects from {from_origin}"
            )));
        }
        // Opaque origins (non-http schemes) never compare equal.
        if target.origin() != from.origin() {
            return Err(GuardRefusal::Redirect(format!(
                "redirect from {from_origin} to another origin ({}) is not followed",
                target.origin().ascii_serialization()
            )));
        }
        self.check_endpoint(target.as_str())
    }
}

impl EndpointGuard {
    /// The resolver of the client's native connections: the same rules as
    /// for HTTP. The host's form (and a literal address) is judged as
    /// [`Self::check_endpoint`] does, a name's whole answer as the HTTP
    /// resolver does, and the connection goes to the judged addresses only.
    #[cfg(feature = "iicp-tcp")]
    pub(crate) fn native_resolver(&self) -> crate::transport::Resolver {
        let guard = *self;
        let lookup = system_lookup();
        Arc::new(move |host: String, port: u16| {
            let lookup = lookup.clone();
            Box::pin(async move {
                let shown = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                guard
                    .check_endpoint(&format!("http://{shown}:{port}"))
                    .map_err(io::Error::other)?;
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return Ok(vec![SocketAddr::new(ip, port)]);
                }
                let addrs = lookup(host.clone()).await?;
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("`{host}` resolved to no addresses"),
                    ));
                }
                judge_answer(&host, &addrs, guard.allows_private()).map_err(io::Error::other)?;
                Ok(addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect())
            })
        })
    }
}

/// Judges the complete answer of one resolution of `host` with
/// [`check_resolved`]: one non-public address refuses the whole answer
/// (endpoint-security-v1 policy: "mixed_answer: refuse").
fn judge_answer(host: &str, addrs: &[IpAddr], allow_private: bool) -> Result<(), GuardRefusal> {
    check_resolved(addrs, allow_private).map_err(|reason| GuardRefusal::Resolved {
        host: host.to_owned(),
        reason,
    })
}

/// The resolver installed by [`EndpointGuard::apply`]. reqwest asks it once
/// per new connection, so each connection is judged on a fresh answer and a
/// rebinding between two connections is caught at connect time.
struct GuardedResolver {
    guard: EndpointGuard,
    lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_private = self.guard.allows_private();
        // The name's form first: `localhost` or `ollama` needs no DNS query to
        // be refused, even when the caller skipped `check_endpoint`.
        if !allow_private {
            if let Some(reason) = classify_name(&host) {
                let refusal = GuardRefusal::Form(EndpointError::NonPublic(reason));
                return Box::pin(async move { Err(refusal.into()) });
            }
        }
        let lookup = (self.lookup)(host.clone());
        Box::pin(async move {
            let addrs = lookup.await?;
            if addrs.is_empty() {
                // Nothing to judge: a failed lookup, not a refusal.
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` resolved to no addresses"),
                )
                .into());
            }
            judge_answer(&host, &addrs, allow_private)?;
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Finds a guard refusal in a reqwest error's source chain (so callers can
/// report "endpoint refused" instead of a generic transport error).
pub(crate) fn refusal_in(err: &reqwest::Error) -> Option<GuardRefusal> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<GuardRefusal>() {
            return Some(refusal.clone());
        }
        // `io::Error::source` skips the error it wraps, so look inside.
        let wrapped = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<GuardRefusal>());
        if let Some(refusal) = wrapped {
            return Some(refusal.clone());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::endpoint::NonPublic;
    use axum::Router;
    use axum::extract::Path;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use serde_json::Value;
    use std::collections::HashMap;
    use std::str::FromStr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/endpoint-security-v1.json"
    ));

    /// The named vector list, which must not be empty.
    fn vectors(list: &str) -> Vec<Value> {
        let all: Value = serde_json::from_str(VECTORS).expect("vectors are JSON");
        let cases = all[list].as_array().expect("vector list").clone();
        assert!(!cases.is_empty(), "{list} is empty");
        cases
    }

    fn ips(value: &Value) -> Vec<IpAddr> {
        value
            .as_array()
            .expect("address list")
            .iter()
            .map(|a| a.as_str().unwrap().parse().expect("address"))
            .collect()
    }

    /// A lookup that answers from a fixed table and fails for other names.
    fn table(entries: &[(&str, Vec<IpAddr>)]) -> Lookup {
        let map: HashMap<String, Vec<IpAddr>> = entries
            .iter()
            .map(|(name, addrs)| (name.to_string(), addrs.clone()))
            .collect();
        Arc::new(move |host: String| {
            let answer = map.get(&host).cloned().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no entry for {host}"))
            });
            Box::pin(async move { answer })
        })
    }

    /// Runs the guarded resolver once for `host`.
    async fn resolve(
        guard: EndpointGuard,
        lookup: &Lookup,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
        let resolver = GuardedResolver {
            guard,
            lookup: Arc::clone(lookup),
        };
        let name = Name::from_str(host).expect("valid name");
        resolver.resolve(name).await.map(Iterator::collect)
    }

    fn refusal<'a>(error: &'a (dyn StdError + Send + Sync + 'static)) -> Option<&'a GuardRefusal> {
        error.downcast_ref::<GuardRefusal>()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn address_vectors() {
        for case in vectors("address_vectors") {
            let id = case["id"].as_str().unwrap();
            let addrs = ips(&case["addresses"]);
            let allowed = case["allowed"].as_bool().unwrap();
            let guard = EndpointGuard::new(case["allow_private"].as_bool().unwrap());
            let lookup = table(&[("node.example.com", addrs.clone())]);

            let result = resolve(guard, &lookup, "node.example.com").await;
            match (&result, allowed) {
                (Ok(got), true) => {
                    let got: Vec<IpAddr> = got.iter().map(SocketAddr::ip).collect();
                    assert_eq!(got, addrs, "{id}: connect to the judged addresses");
                }
                (Err(e), false) => assert!(
                    matches!(refusal(&**e), Some(GuardRefusal::Resolved { host, .. }) if host == "node.example.com"),
                    "{id}: expected a Resolved refusal, got {e}"
                ),
                _ => panic!("{id}: expected allowed={allowed}, got {result:?}"),
            }

            // A single address must get the same verdict as a literal endpoint.
            if let [ip] = addrs[..] {
                let literal = match ip {
                    IpAddr::V4(v4) => format!("http://{v4}:9484/"),
                    IpAddr::V6(v6) => format!("http://[{v6}]:9484/"),
                };
                assert_eq!(
                    guard.check_endpoint(&literal).is_ok(),
                    allowed,
                    "{id}: literal {literal}"
                );
            }
        }
    }

    #[tokio::test]
    async fn hostname_vectors() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        for case in vectors("hostname_vectors") {
            let id = case["id"].as_str().unwrap();
            let host = case["host"].as_str().unwrap();
            let allowed = case["allowed"].as_bool().unwrap();
            let endpoint = format!("https://{host}/");

            let strict = EndpointGuard::new(false);
            let checked = strict.check_endpoint(&endpoint);
            assert_eq!(checked.is_ok(), allowed, "{id}: {checked:?}");
            if let Err(refusal) = checked {
                assert!(
                    matches!(refusal, GuardRefusal::Form(EndpointError::NonPublic(_))),
                    "{id}: {refusal:?}"
                );
            }
            // The resolver refuses the name form too, even with a public answer.
            let lookup = table(&[(host, vec![public])]);
            let resolved = resolve(strict, &lookup, host).await;
            assert_eq!(resolved.is_ok(), allowed, "{id}: resolver {resolved:?}");

            // The opt-in admits every name form.
            let open = EndpointGuard::new(true);
            assert_eq!(open.check_endpoint(&endpoint), Ok(()), "{id}: opt-in");
            assert!(resolve(open, &lookup, host).await.is_ok(), "{id}: opt-in");
        }
    }

    #[tokio::test]
    async fn resolution_attempt_vectors() {
        for case in vectors("resolution_attempt_vectors") {
            let id = case["id"].as_str().unwrap();
            let attempts: Vec<Vec<IpAddr>> = case["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(ips)
                .collect();
            let expected: Vec<&str> = case["expected"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            assert_eq!(attempts.len(), expected.len(), "{id}");

            // A DNS server whose answer changes between queries.
            let calls = Arc::new(AtomicUsize::new(0));
            let lookup: Lookup = {
                let calls = Arc::clone(&calls);
                let attempts = attempts.clone();
                Arc::new(move |_host: String| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let answer = attempts[n].clone();
                    Box::pin(async move { Ok(answer) })
                })
            };
            let guard = EndpointGuard::new(case["allow_private"].as_bool().unwrap());
            for (n, want) in expected.iter().enumerate() {
                let result = resolve(guard, &lookup, "node.example.com").await;
                let got = match &result {
                    Ok(_) => "allow",
                    Err(e) if matches!(refusal(&**e), Some(GuardRefusal::Resolved { .. })) => {
                        "refuse"
                    }
                    Err(e) => panic!("{id} attempt {n}: unexpected error {e}"),
                };
                assert_eq!(got, *want, "{id} attempt {n}");
            }
            // Every attempt asked DNS again: nothing was cached.
            assert_eq!(calls.load(Ordering::SeqCst), expected.len(), "{id}");
        }
    }

    #[tokio::test]
    async fn redirect_vectors() {
        let from = url("https://node.example.com/v1/task");
        for case in vectors("redirect_vectors") {
            let id = case["id"].as_str().unwrap();
            let status = u16::try_from(case["status"].as_u64().unwrap()).unwrap();
            let target_host = if case["same_origin"].as_bool().unwrap() {
                "node.example.com"
            } else {
                "other.example.com"
            };
            let target = url(&format!("https://{target_host}/v1/task/moved"));
            let guard = EndpointGuard::new(case["allow_private"].as_bool().unwrap());

            // The policy decides; a followed redirect is then revalidated by
            // the resolver against the target's addresses.
            let outcome = match guard.check_redirect(status, &target, std::slice::from_ref(&from)) {
                Err(refusal) => {
                    assert!(
                        matches!(refusal, GuardRefusal::Redirect(_)),
                        "{id}: {refusal:?}"
                    );
                    "refuse"
                }
                Ok(()) => {
                    let lookup = table(&[(target_host, ips(&case["target_addresses"]))]);
                    match resolve(guard, &lookup, target_host).await {
                        Ok(_) => "follow_after_revalidation",
                        Err(e) => {
                            assert!(
                                matches!(refusal(&*e), Some(GuardRefusal::Resolved { .. })),
                                "{id}: {e}"
                            );
                            "refuse"
                        }
                    }
                }
            };
            assert_eq!(outcome, case["expected"].as_str().unwrap(), "{id}");
        }
    }

    #[test]
    fn redirect_limits_and_targets() {
        let strict = EndpointGuard::new(false);
        let hop = |n: usize| url(&format!("https://node.example.com/hop/{n}"));
        let chain = |len: usize| (0..len).map(hop).collect::<Vec<_>>();

        // Redirects number 1..=3 are followed, number 4 is not.
        for len in 1..=MAX_REDIRECTS {
            assert_eq!(strict.check_redirect(308, &hop(len), &chain(len)), Ok(()));
        }
        assert!(matches!(
            strict.check_redirect(307, &hop(4), &chain(4)),
            Err(GuardRefusal::Redirect(_))
        ));
        // Every non-307/308 status is refused, on the same origin too.
        for status in [300, 301, 302, 303, 304] {
            assert!(
                matches!(
                    strict.check_redirect(status, &hop(1), &chain(1)),
                    Err(GuardRefusal::Redirect(_))
                ),
                "{status}"
            );
        }
        // Same host, other scheme or port: another origin.
        for other in [
            "http://node.example.com/x",
            "https://node.example.com:8443/x",
        ] {
            assert!(
                matches!(
                    strict.check_redirect(307, &url(other), &chain(1)),
                    Err(GuardRefusal::Redirect(_))
                ),
                "{other}"
            );
        }
        // The explicit default port is the same origin.
        assert_eq!(
            strict.check_redirect(307, &url("https://node.example.com:443/x"), &chain(1)),
            Ok(())
        );
        // Same origin compares with the latest URL, not the original one.
        let moved = vec![hop(0), url("https://b.example.com/")];
        assert!(strict.check_redirect(307, &hop(1), &moved).is_err());
        // Same-origin credentials are still refused.
        assert_eq!(
            strict.check_redirect(307, &url("https://u:p@node.example.com/x"), &chain(1)),
            Err(GuardRefusal::Form(EndpointError::Credentials))
        );
        // No originating request: refused.
        assert!(strict.check_redirect(307, &hop(1), &[]).is_err());
    }

    #[test]
    fn redirect_to_a_literal_address_is_judged() {
        let from = [url("http://10.0.0.5:9484/v1/task")];
        let target = url("http://10.0.0.5:9484/v1/other");
        assert_eq!(
            EndpointGuard::new(false).check_redirect(307, &target, &from),
            Err(GuardRefusal::Form(EndpointError::NonPublic(
                NonPublic::Private
            )))
        );
        assert_eq!(
            EndpointGuard::new(true).check_redirect(307, &target, &from),
            Ok(())
        );
        let public = [url("http://93.184.216.34/a")];
        assert_eq!(
            EndpointGuard::new(false).check_redirect(308, &url("http://93.184.216.34/b"), &public),
            Ok(())
        );
    }

    #[test]
    fn mapped_ipv4_in_ipv6_is_refused() {
        assert_eq!(
            EndpointGuard::new(false).check_endpoint("http://[::ffff:127.0.0.1]:1"),
            Err(GuardRefusal::Form(EndpointError::NonPublic(
                NonPublic::Loopback
            )))
        );
        assert_eq!(
            EndpointGuard::new(false).check_endpoint("http://[::ffff:169.254.169.254]/"),
            Err(GuardRefusal::Form(EndpointError::NonPublic(
                NonPublic::LinkLocal
            )))
        );
        assert_eq!(
            EndpointGuard::new(true).check_endpoint("http://[::ffff:127.0.0.1]:1"),
            Ok(())
        );
    }

    #[test]
    fn form_rules_hold_with_the_opt_in() {
        for guard in [EndpointGuard::new(false), EndpointGuard::new(true)] {
            assert_eq!(
                guard.check_endpoint("ftp://node.example.com/"),
                Err(GuardRefusal::Form(EndpointError::Scheme("ftp".into())))
            );
            assert_eq!(
                guard.check_endpoint("https://user:secret@node.example.com/"),
                Err(GuardRefusal::Form(EndpointError::Credentials))
            );
            assert_eq!(
                guard.check_endpoint("node.example.com"),
                Err(GuardRefusal::Form(EndpointError::Invalid))
            );
            assert_eq!(
                guard.check_endpoint("https://node.example.com:9484/base"),
                Ok(())
            );
        }
        assert!(EndpointGuard::new(true).allows_private());
        assert!(!EndpointGuard::new(false).allows_private());
    }

    #[test]
    fn display_says_how_to_opt_in_when_that_would_help() {
        let hint = "(allow loopback/private nodes with IICP_PROXY_ALLOW_LOOPBACK_NODES=1 \
                    or the client builder's allow_private_nodes)";
        let resolved = GuardRefusal::Resolved {
            host: "evil.example.com".into(),
            reason: NonPublic::Loopback,
        };
        assert_eq!(
            resolved.to_string(),
            format!(
                "node endpoint refused: `evil.example.com` resolves to a loopback address {hint}"
            )
        );
        let literal = GuardRefusal::Form(EndpointError::NonPublic(NonPublic::Private));
        assert_eq!(
            literal.to_string(),
            format!("node endpoint refused: endpoint host is a private address {hint}")
        );
        // The opt-in would not help these, so they do not mention it.
        let scheme = GuardRefusal::Form(EndpointError::Scheme("ftp".into()));
        assert_eq!(
            scheme.to_string(),
            "node endpoint refused: endpoint scheme `ftp` is not http or https"
        );
        let redirect = GuardRefusal::Redirect("more than 3 redirects".into());
        assert_eq!(
            redirect.to_string(),
            "node redirect refused: more than 3 redirects"
        );
    }

    #[tokio::test]
    async fn empty_answer_is_a_lookup_failure() {
        let lookup = table(&[("node.example.com", vec![])]);
        for guard in [EndpointGuard::new(false), EndpointGuard::new(true)] {
            let err = resolve(guard, &lookup, "node.example.com")
                .await
                .expect_err("nothing to connect to");
            assert!(refusal(&*err).is_none(), "{err}");
        }
    }

    // --- End to end: real HTTP on loopback --------------------------------

    /// Paths the test server answers; `/` says "ok".
    async fn node_server(hits: Arc<Mutex<Vec<String>>>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let redirect = |status: StatusCode, location: String| {
            (status, [(header::LOCATION, location)]).into_response()
        };
        let record = move |path: String| hits.lock().unwrap().push(path);
        let app = Router::new()
            .route(
                "/",
                get(move || {
                    record("/".into());
                    async { "ok" }
                }),
            )
            .route(
                "/found",
                get(move || async move { redirect(StatusCode::FOUND, "/".into()) }),
            )
            .route(
                "/temporary",
                get(move || async move { redirect(StatusCode::TEMPORARY_REDIRECT, "/".into()) }),
            )
            .route(
                "/elsewhere",
                get(move || async move {
                    // Another origin on the same server: following it would work.
                    let to = format!("http://other.example.com:{port}/");
                    redirect(StatusCode::TEMPORARY_REDIRECT, to)
                }),
            )
            .route(
                "/chain/{n}",
                get(move |Path(n): Path<u32>| async move {
                    if n == 0 {
                        "ok".into_response()
                    } else {
                        let to = format!("/chain/{}", n - 1);
                        redirect(StatusCode::TEMPORARY_REDIRECT, to)
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    /// A client guarded by `guard` whose DNS answers from `entries`.
    fn client(guard: EndpointGuard, entries: &[(&str, Vec<IpAddr>)]) -> reqwest::Client {
        // The bound only stops a broken guard from hanging on a public
        // address that is unreachable here; nothing asserts on time.
        let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        guard
            .apply_with_lookup(builder, table(entries))
            .build()
            .unwrap()
    }

    fn loopback() -> Vec<IpAddr> {
        vec!["127.0.0.1".parse().unwrap()]
    }

    fn evil(port: u16, path: &str) -> String {
        format!("http://evil.example.com:{port}{path}")
    }

    /// Sends a GET that the guard must refuse, and returns the refusal.
    async fn refused(client: &reqwest::Client, url: &str) -> GuardRefusal {
        match client.get(url).send().await {
            Ok(resp) => panic!("{url}: expected a refusal, got HTTP {}", resp.status()),
            Err(e) => refusal_in(&e).unwrap_or_else(|| panic!("{url}: no refusal in {e:?}")),
        }
    }

    async fn body(client: &reqwest::Client, url: &str) -> (u16, String) {
        let resp = client.get(url).send().await.expect(url);
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_is_refused_at_connect() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let port = node_server(Arc::clone(&hits)).await;
        let url = evil(port, "/");
        let entries = [("evil.example.com", loopback())];

        // The URL form is fine: only the resolution gives it away.
        let strict = EndpointGuard::new(false);
        assert_eq!(strict.check_endpoint(&url), Ok(()));
        assert_eq!(
            refused(&client(strict, &entries), &url).await,
            GuardRefusal::Resolved {
                host: "evil.example.com".into(),
                reason: NonPublic::Loopback
            }
        );
        assert!(hits.lock().unwrap().is_empty(), "the server was reached");

        let open = EndpointGuard::new(true);
        assert_eq!(
            body(&client(open, &entries), &url).await,
            (200, "ok".into())
        );
        assert_eq!(*hits.lock().unwrap(), ["/"]);
    }

    #[tokio::test]
    async fn mixed_public_private_answer_is_refused() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let port = node_server(Arc::clone(&hits)).await;
        let mixed = vec![
            "93.184.216.34".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ];
        let client = client(EndpointGuard::new(false), &[("evil.example.com", mixed)]);
        assert_eq!(
            refused(&client, &evil(port, "/")).await,
            GuardRefusal::Resolved {
                host: "evil.example.com".into(),
                reason: NonPublic::Loopback
            }
        );
        assert!(hits.lock().unwrap().is_empty(), "the server was reached");
    }

    #[tokio::test]
    async fn found_302_is_not_followed() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let port = node_server(Arc::clone(&hits)).await;
        let client = client(
            EndpointGuard::new(true),
            &[("evil.example.com", loopback())],
        );
        let refusal = refused(&client, &evil(port, "/found")).await;
        assert!(matches!(refusal, GuardRefusal::Redirect(_)), "{refusal:?}");
        assert!(hits.lock().unwrap().is_empty(), "the 302 was followed");
    }

    #[tokio::test]
    async fn same_origin_307_is_followed() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let port = node_server(Arc::clone(&hits)).await;
        let client = client(
            EndpointGuard::new(true),
            &[("evil.example.com", loopback())],
        );
        assert_eq!(
            body(&client, &evil(port, "/temporary")).await,
            (200, "ok".into())
        );
        assert_eq!(*hits.lock().unwrap(), ["/"]);
    }

    #[tokio::test]
    async fn cross_origin_307_is_refused() {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let port = node_server(Arc::clone(&hits)).await;
        let entries = [
            ("evil.example.com", loopback()),
            ("other.example.com", loopback()),
        ];
        let client = client(EndpointGuard::new(true), &entries);
        let refusal = refused(&client, &evil(port, "/elsewhere")).await;
        assert!(matches!(refusal, GuardRefusal::Redirect(_)), "{refusal:?}");
        assert!(hits.lock().unwrap().is_empty(), "the redirect was followed");
    }

    #[tokio::test]
    async fn four_same_origin_307s_are_refused_three_are_followed() {
        let port = node_server(Arc::new(Mutex::new(Vec::new()))).await;
        let client = client(
            EndpointGuard::new(true),
            &[("evil.example.com", loopback())],
        );
        let refusal = refused(&client, &evil(port, "/chain/4")).await;
        assert!(matches!(refusal, GuardRefusal::Redirect(_)), "{refusal:?}");
        assert_eq!(
            body(&client, &evil(port, "/chain/3")).await,
            (200, "ok".into())
        );
    }

    #[tokio::test]
    async fn system_lookup_is_guarded_too() {
        let port = node_server(Arc::new(Mutex::new(Vec::new()))).await;
        let url = format!("http://localhost:{port}/");
        let build = |guard: EndpointGuard| {
            guard
                .apply(reqwest::Client::builder().connect_timeout(Duration::from_secs(5)))
                .build()
                .unwrap()
        };
        // `localhost` is refused by its form, before any DNS query.
        assert_eq!(
            refused(&build(EndpointGuard::new(false)), &url).await,
            GuardRefusal::Form(EndpointError::NonPublic(NonPublic::LocalName))
        );
        // With the opt-in, the system resolver's answer is used.
        assert_eq!(
            body(&build(EndpointGuard::new(true)), &url).await,
            (200, "ok".into())
        );
    }

    #[tokio::test]
    async fn refusal_in_ignores_other_errors() {
        let err = reqwest::Client::new()
            .get("http://[::1")
            .send()
            .await
            .expect_err("not a URL");
        assert_eq!(refusal_in(&err), None);
    }

    #[cfg(feature = "iicp-tcp")]
    #[tokio::test]
    async fn native_connections_are_judged_by_the_same_rules() {
        let strict = EndpointGuard::new(false).native_resolver();
        for host in ["127.0.0.1", "10.0.0.1", "::1", "localhost", "ollama"] {
            let err = strict(host.to_owned(), 9484).await.unwrap_err();
            assert!(err.to_string().contains("refused"), "{host}: {err}");
        }
        let open = EndpointGuard::new(true).native_resolver();
        assert_eq!(
            open("127.0.0.1".to_owned(), 9484).await.unwrap(),
            vec!["127.0.0.1:9484".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            open("::1".to_owned(), 9484).await.unwrap(),
            vec!["[::1]:9484".parse::<SocketAddr>().unwrap()]
        );
    }
}
