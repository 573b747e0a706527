//! Captures every tracing event (TRACE and up, human format) on the current
//! thread, so a test can search the node's log lines. `#[tokio::test]` runs
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
