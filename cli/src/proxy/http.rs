//! One client TCP connection, served as HTTP/1.1: a WebSocket upgrade goes to the upstream
//! (then `relay`), any other request is forwarded and its response streamed back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use wsp_server::ws::{handshake, WsConfig, WsError};

use super::relay;
use super::shared::Shared;

type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.into()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// Serves one client connection (TCP, or TLS with `--tls-cert`) until it closes.
pub async fn serve<S>(shared: Arc<Shared>, tcp: S, peer: SocketAddr, id: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(route(shared, req, peer, id).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades()
        .await;
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    id: u64,
) -> Response<Body> {
    if is_upgrade(&req) {
        websocket(shared, req, peer, id).await
    } else {
        forward(&shared, req).await
    }
}

/// Headers that belong to one hop (RFC 9110 §7.6.1) or to one side's WebSocket handshake: not
/// carried across.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "content-length",
];

/// The upstream URL of a request's path and query.
fn upstream_url(shared: &Shared, req: &Request<Incoming>, scheme: &str) -> String {
    let base = &shared.upstream;
    let host = base.host_str().unwrap_or("127.0.0.1");
    let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    format!("{scheme}://{host}{port}{path}")
}

async fn websocket(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    id: u64,
) -> Response<Body> {
    let accept = match handshake::accept_key(req.headers()) {
        Ok(a) => a,
        Err((status, msg)) => return text(status, msg),
    };
    let client_deflate = if shared.client_compression {
        handshake::negotiate_deflate(req.headers())
    } else {
        None
    };
    let url = upstream_url(&shared, &req, shared.upstream.scheme());
    let mut up_req = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad upstream URL {url}: {e}"),
            )
        }
    };
    for (name, value) in req.headers() {
        if !HOP.contains(&name.as_str()) {
            up_req.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let (false, Some(host)) = (shared.rewrite_host, req.headers().get(header::HOST)) {
        up_req.headers_mut().insert(header::HOST, host.clone());
    }
    let path = req.uri().to_string();
    let mut config = WsConfig::default();
    config.max_message = shared.max_message;
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        let io = relay::open(&shared, &up_req).await?;
        handshake::client(io, up_req, shared.upstream_compression, &config)
            .await
            .map_err(anyhow::Error::new)
    })
    .await;
    let (up, resp) = match connected {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            // The upstream's refusal goes back as it was: its status and its reason.
            if let Some(WsError::Refused { status, body }) = e.downcast_ref::<WsError>() {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                shared.log.event(
                    id,
                    "refused",
                    json!({"peer": peer.to_string(), "path": path, "status": status.as_u16(), "reason": body}),
                ).await;
                return text(status, body.clone());
            }
            shared.log.event(id, "refused", json!({"peer": peer.to_string(), "path": path, "status": 502, "reason": format!("{e:#}")})).await;
            return text(
                StatusCode::BAD_GATEWAY,
                format!("wsp proxy: upstream {url}: {e:#}"),
            );
        }
        Err(_) => {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!("wsp proxy: upstream {url} did not complete the handshake in 10 s"),
            )
        }
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return text(
            StatusCode::UPGRADE_REQUIRED,
            "HTTP/1.1 is required for WebSocket",
        );
    };
    let mut out = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    // What the upstream answered, but for its own side's handshake: its subprotocol, cookies…
    for (name, value) in resp.headers() {
        if !HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    if let Some(d) = &client_deflate {
        out = out.header(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(&d.response()).expect("ASCII"),
        );
    }
    shared.log.event(
        id,
        "open",
        json!({
            "peer": peer.to_string(),
            "path": path,
            "upstream": url,
            "subprotocol": resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()),
            "client_compression": client_deflate.is_some(),
            "upstream_compression": up.deflate().is_some(),
        }),
    ).await;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let client = wsp_server::ws::WebSocket::new(
                    TokioIo::new(upgraded),
                    wsp_server::ws::Role::Server,
                    client_deflate,
                    &config,
                    Bytes::new(),
                );
                relay::run(&shared, id, client, up).await;
            }
            Err(e) => {
                shared
                    .log
                    .event(
                        id,
                        "closed",
                        json!({"error": format!("upgrade failed: {e}")}),
                    )
                    .await
            }
        }
    });
    out.body(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
    .expect("a valid response")
}

/// Forwards a plain HTTP request to the upstream's http(s):// and streams the answer back.
async fn forward(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let scheme = if shared.upstream.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let url = upstream_url(shared, &req, scheme);
    let (mut parts, body) = req.into_parts();
    parts.uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad upstream URL {url}: {e}"),
            )
        }
    };
    let client_host = parts.headers.remove(header::HOST);
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        parts.headers.remove(h);
    }
    let host = shared
        .upstream
        .host_str()
        .unwrap_or("127.0.0.1")
        .to_string();
    let host = match shared.upstream.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    match client_host.filter(|_| !shared.rewrite_host) {
        Some(h) => {
            parts.headers.insert(header::HOST, h);
        }
        None => {
            if let Ok(v) = HeaderValue::from_str(&host) {
                parts.headers.insert(header::HOST, v);
            }
        }
    }
    let req = Request::from_parts(parts, body);
    // One upstream connection per request (hyper's HTTP/1 client on it): simple, and a
    // debugging proxy's page loads are few.
    let sent = async {
        let io = relay::open(shared, &req).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        anyhow::Ok(send.send_request(req).await?)
    };
    match sent.await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            format!("wsp proxy: upstream {url}: {e:#}"),
        ),
    }
}
