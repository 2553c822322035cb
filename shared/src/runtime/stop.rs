//! The stop signal every part of a worker waits on, and the OS signals that set it.

use std::time::Duration;

use tokio::sync::watch;

/// A stop signal every part of a worker can wait on.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// A signal and the sender that sets it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether the worker is stopping.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the worker is stopping.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps `d` unless stopped first; says whether the sleep ran its course.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C: what every worker binary passes as its shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// A stop signal set when `shutdown` resolves.
pub fn stop_on(shutdown: impl Future<Output = ()> + Send + 'static) -> StopSignal {
    let (tx, stop) = StopSignal::new();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new deliveries, finishing in-flight work");
        let _ = tx.send(true);
    });
    stop
}
