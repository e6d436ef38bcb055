//! The accept loop in front of the router: every TCP connection gets TLS (when configured) and
//! a complete HTTP request head within `handshake_timeout`, or is dropped; request heads are
//! capped in size (431). A partial request can hold a socket for the timeout at most.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::hub::Hub;
use crate::limits::cause;
use crate::tls::Tls;

/// Largest request head (request line and headers) accepted; bigger ones get 431.
const MAX_HEAD: usize = 16 * 1024;

/// Accepts connections until `stop` resolves, serving each on its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    hub: Hub,
    tls: Option<Arc<Tls>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: say so once in a while, and do not spin.
                    hub.refusals().note("accept_error", &e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small frames must leave at once: latency matters more than packet count here.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve(tcp, peer, router.clone(), hub.clone(), tls.clone()));
    }
}

async fn serve(tcp: TcpStream, peer: SocketAddr, router: Router, hub: Hub, tls: Option<Arc<Tls>>) {
    let limit = hub.config().handshake_timeout;
    match tls {
        None => http(TokioIo::new(tcp), peer, router, &hub).await,
        Some(tls) => match tokio::time::timeout(limit, tls.acceptor().accept(tcp)).await {
            Ok(Ok(stream)) => http(TokioIo::new(stream), peer, router, &hub).await,
            Ok(Err(e)) => hub.refusals().note(cause::TLS, &format!("{peer}: {e}")),
            Err(_) => hub
                .refusals()
                .note(cause::HANDSHAKE_TIMEOUT, &format!("{peer}: TLS handshake")),
        },
    }
}

async fn http<I>(io: TokioIo<I>, peer: SocketAddr, router: Router, hub: &Hub)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(hub.config().handshake_timeout)
        .max_header_size(MAX_HEAD)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        if e.is_timeout() {
            hub.refusals()
                .note(cause::HANDSHAKE_TIMEOUT, &format!("{peer}: request head"));
        } else {
            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
        }
    }
}
