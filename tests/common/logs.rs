//! Captures every tracing event (TRACE and up, human format) on the current
//! thread, so a test can search the node's log lines; and the audit every
//! `iicp-node` process's output goes through when a test is done with it
//! ([`assert_no_leaks`]: no payload marker, token, key or HMAC). `#[tokio::test]` runs
//! on one thread, so spawned tasks log here too.
//!
//! Other tests of the same binary run in parallel without a subscriber.
//! With a single registered dispatcher, tracing computes a call site's
//! interest from whichever thread reaches it first, and a thread without a
//! subscriber would switch it off for everyone. A global do-nothing
//! subscriber makes the dispatchers two, so interest is computed from all.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The captured log text.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing; logging goes back to normal when the guard drops.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
    });
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Values tests handed to a program that no log line may carry: payload
/// markers, tokens, keys (see [`secret`]).
static SECRETS: std::sync::LazyLock<Mutex<Vec<String>>> =
    std::sync::LazyLock::new(Default::default);

/// Registers `value` as a secret of this test binary and returns it: every
/// audited log ([`assert_no_leaks`]) is searched for it.
/// A secret must be long enough not to turn up by chance.
pub fn secret(value: impl Into<String>) -> String {
    let value = value.into();
    assert!(value.len() >= 10, "a secret of 10 bytes or more: {value:?}");
    let mut known = SECRETS.lock().unwrap();
    if !known.contains(&value) {
        known.push(value.clone());
    }
    value
}

/// Shortest run of hex digits taken for a token or an HMAC: node and proxy
/// tokens are 64 hex digits, heartbeat signatures 64. Trace ids (32) and
/// span ids (16) are shorter.
const TOKEN_HEX_RUN: usize = 40;

/// What in `text` looks like a leak: a registered [`secret`], a run of
/// [`TOKEN_HEX_RUN`] or more hex digits (other than one labelled `public
/// key `), a bearer credential.
pub fn leaks(text: &str) -> Vec<String> {
    let mut found: Vec<String> = SECRETS
        .lock()
        .unwrap()
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(|s| format!("the secret {s:?}"))
        .collect();
    for line in text.lines() {
        // A public key may be printed (the directory's signing key says so
        // at start), and is always labelled.
        let longest = line
            .split("public key ")
            .enumerate()
            .flat_map(|(i, part)| {
                let part = if i == 0 {
                    part
                } else {
                    part.trim_start_matches(|c: char| c.is_ascii_hexdigit())
                };
                part.split(|c: char| !c.is_ascii_hexdigit()).map(str::len)
            })
            .max()
            .unwrap_or(0);
        if longest >= TOKEN_HEX_RUN {
            found.push(format!(
                "{longest} hex digits in a row (a token's shape): {line}"
            ));
        }
        if let Some(rest) = line.split("Bearer ").nth(1)
            && rest.chars().next().is_some_and(|c| !c.is_whitespace())
        {
            found.push(format!("a bearer credential: {line}"));
        }
    }
    found
}

/// Panics when `log` (the output of `what`) shows a [`leaks`] finding.
pub fn assert_no_leaks(what: &str, log: &str) {
    let found = leaks(log);
    assert!(
        found.is_empty(),
        "{what} logged what it must not:\n{}",
        found.join("\n")
    );
}
