//! Serving an HTTP app the runtime's way: until stopped, then at most a grace period for the requests
//! in flight.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::runtime::stop::StopSignal;

/// Serves until stopped, then waits at most `grace` for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: StopSignal,
    grace: Duration,
) -> std::io::Result<()> {
    let mut stopped = stop.clone();
    let server =
        axum::serve(listener, app).with_graceful_shutdown(async move { stopped.wait().await });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    let mut stopping = stop;
    let deadline = async {
        stopping.wait().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = &mut server => result,
        _ = deadline => {
            tracing::warn!(?grace, "requests still in flight after the grace period; leaving them");
            Ok(())
        }
    }
}
