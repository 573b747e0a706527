//! Waiting for SIGINT (Ctrl-C) or SIGTERM.

use std::future::Future;

/// A future that resolves on the first SIGINT or SIGTERM. The handlers are
/// installed when this function is called, not when the future is first
/// polled: call it before announcing that the process is up, so a signal
/// sent as soon as the startup line appears is a clean shutdown rather than
/// the default disposition killing the process. Must be called inside a
/// Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
