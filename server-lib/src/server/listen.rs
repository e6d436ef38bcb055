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

use crate::base::limits::cause;
use crate::base::tls::Tls;
use crate::pool::hub::Hub;

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
        let hosts = HostCheck::for_socket(&tcp, &hub.config().allowed_hosts);
        tokio::spawn(serve(
            tcp,
            peer,
            hosts,
            router.clone(),
            hub.clone(),
            tls.clone(),
        ));
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    hosts: HostCheck,
    router: Router,
    hub: Hub,
    tls: Option<Arc<Tls>>,
) {
    let limit = hub.config().handshake_timeout;
    match tls {
        None => http(TokioIo::new(tcp), peer, hosts, router, &hub).await,
        Some(tls) => match tokio::time::timeout(limit, tls.accept(tcp)).await {
            Ok(Ok(stream)) => http(TokioIo::new(stream), peer, hosts, router, &hub).await,
            Ok(Err(e)) => hub.refusals().note(cause::TLS, &format!("{peer}: {e}")),
            Err(_) => hub
                .refusals()
                .note(cause::HANDSHAKE_TIMEOUT, &format!("{peer}: TLS handshake")),
        },
    }
}

async fn http<I>(io: TokioIo<I>, peer: SocketAddr, hosts: HostCheck, router: Router, hub: &Hub)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let refusals = hub.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let refused = hosts.refuses(req.headers().get(hyper::header::HOST));
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let hub = refusals.clone();
        async move {
            if let Some(host) = refused {
                hub.refusals()
                    .note(cause::HOST, &format!("{peer}: Host {host:?}"));
                return Ok(foreign_host(&host));
            }
            router.oneshot(req).await
        }
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

/// The DNS-rebinding guard: on a server listening on a loopback address, a request must name a
/// loopback host (`localhost`, `*.localhost`, `127.x.y.z`, `[::1]`, any port) or one of
/// `allowed_hosts`. A page on `evil.example` whose name an attacker points at 127.0.0.1 sends
/// `Host: evil.example`, and its `Origin` matches that `Host`, so only this check tells it
/// from the user's own pages. A server on any other address serves any `Host` (names are
/// then the operator's to control, with `--allow-origin`).
#[derive(Debug, Clone)]
struct HostCheck(Option<Arc<[String]>>);

impl HostCheck {
    fn for_socket(tcp: &TcpStream, allowed: &[String]) -> Self {
        let loopback = tcp.local_addr().is_ok_and(|a| a.ip().is_loopback());
        if !loopback || allowed.iter().any(|h| h == "*") {
            return Self(None);
        }
        Self(Some(
            allowed.iter().map(|h| h.to_ascii_lowercase()).collect(),
        ))
    }

    /// The `Host` value when it is refused.
    fn refuses(&self, host: Option<&hyper::header::HeaderValue>) -> Option<String> {
        let allowed = self.0.as_ref()?;
        // HTTP/1.0 clients may send none; browsers always do.
        let host = host?;
        let Ok(value) = host.to_str() else {
            return Some(String::from_utf8_lossy(host.as_bytes()).into_owned());
        };
        let name = host_name(value).to_ascii_lowercase();
        let ok = is_loopback_name(&name) || allowed.contains(&name);
        (!ok).then(|| value.to_string())
    }
}

/// The name part of a `Host` value: `[::1]:80` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn foreign_host(host: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        hyper::StatusCode::FORBIDDEN,
        format!(
            "Host {host:?} is not a loopback name, and this server listens on a loopback address: \
             a page on another name reaching it is a DNS-rebinding attack. If the name is yours, \
             start wsp serve with --allowed-host {}\n",
            host_name(host)
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_and_others_need_a_listing() {
        let check = HostCheck(Some(vec!["app.test".to_string()].into()));
        let refused =
            |h: &'static str| check.refuses(Some(&hyper::header::HeaderValue::from_static(h)));
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:9",
            "127.3.4.5",
            "[::1]:80",
            "x.localhost",
            "app.test:443",
        ] {
            assert_eq!(refused(ok), None, "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil",
            "[::2]:80",
        ] {
            assert!(refused(bad).is_some(), "{bad}");
        }
        assert_eq!(check.refuses(None), None);
        assert_eq!(
            HostCheck(None).refuses(Some(&hyper::header::HeaderValue::from_static("evil"))),
            None
        );
    }
}
