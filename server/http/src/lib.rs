//! The HTTP/1 accept loop that every server of RICE Atlas runs: the site (`rice serve`) and the chat-completions
//! servers (`rice lm serve`, `rice aligner serve`). One loop, so that a hardening fix reaches all three.
//!
//! It is hyper's HTTP/1 with a timer rather than `axum::serve`, which sets none and so turns hyper's header timeout
//! off: there, idle connections and requests sent a byte at a time ("slowloris") hold their connections forever.
//! Here a connection that has not sent a whole request head within `header_read_timeout` of opening (or of its last
//! answer) is closed. Answers may take as long as they need.
//!
//! Not for: routing, limits on bodies or URIs, or headers — those are layers of each server's `Router`.

use std::io::ErrorKind;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until SIGINT or SIGTERM, then lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    // Every connection holds a receiver: `stop.closed()` resolves once the last one has finished.
    let (stop, stopping) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) => continue,
                // Out of file descriptors, say: wait for some to close rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written in pieces (head, then body chunks): without this, Nagle's algorithm holds each next
        // piece until the client's delayed ACK, some 40 ms.
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(stopping);
    stop.send_replace(());
    stop.closed().await;
    Ok(())
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM. Where a signal cannot be listened for, that one never comes: the server
/// then runs until killed rather than stopping at once.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
