//! The HTTP side: the `/ws` endpoint (handshake checks, connect parameters), `/healthz`,
//! `/metrics`, the server API (`api.rs`) and the demo page (`demo.rs`), and a server loop
//! that shuts down gracefully (every client gets 1001). The top layer: [`listen`] is the
//! accept loop (TLS, request-head limits, the loopback `Host` check), [`conn`] one connection's
//! task, [`api`] the server API, [`demo`] the demo page.

pub(crate) mod api;
pub(crate) mod conn;
mod demo;
pub(crate) mod listen;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::base::auth::{self, Grant};
use crate::base::limits::{cause, check_channel, check_id, PerIp};
use crate::base::tls::Tls;
use crate::commands::app::App;
use crate::pool::hub::Hub;
use crate::transport::close::Close;
use crate::transport::{handshake, WsConfig};
use crate::wire::protocol::Format;
use crate::{Error, Result};
use conn::{Alarms, Ctx, Guards, Join, Slot, Start, Task};

/// A pool server: a [`Hub`], an [`App`], and the HTTP endpoints in front of them.
#[derive(Clone)]
pub struct Server {
    connections: Arc<AtomicUsize>,
    per_ip: PerIp,
    tls: Option<Arc<Tls>>,
    /// What every connection shares: the hub, the app, and the alarm ticker that rings every
    /// connection's timers (pings, heartbeats, write timeouts, token expiry).
    ctx: Arc<Ctx>,
}

impl Server {
    /// A server for `hub` running `app`. Fails when the hub's configuration is invalid.
    pub fn new(hub: Hub, app: App) -> Result<Self> {
        hub.config().validate()?;
        let alarms = Alarms::new(hub.config());
        Ok(Self {
            ctx: Arc::new(Ctx {
                hub,
                app: Arc::new(app),
                alarms,
            }),
            connections: Arc::new(AtomicUsize::new(0)),
            per_ip: PerIp::default(),
            tls: None,
        })
    }

    /// Serves `wss://` and `https://` with this certificate (see [`Tls::reload`]).
    pub fn with_tls(mut self, tls: Arc<Tls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The pool.
    pub fn hub(&self) -> &Hub {
        &self.ctx.hub
    }

    /// The axum router: `GET /ws` (WebSocket), `GET /healthz`, `GET /metrics` (unless metrics
    /// are off), `POST /api` and `POST /api/batch` (they answer 404 unless an API key is set),
    /// and with `demo`, the demo page at `GET /` and `GET /index`. Mount it in a larger app, or
    /// let [`Server::run`] serve it.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/ws", get(upgrade))
            .route("/healthz", get(healthz));
        if self.ctx.hub.metrics().is_some() {
            router = router.route("/metrics", get(metrics));
        }
        let router = router.with_state(self.clone());
        let api = Router::new()
            .route("/api", post(crate::server::api::call))
            .route("/api/batch", post(crate::server::api::batch))
            .with_state(self.ctx.hub.clone());
        let mut router = router.merge(api);
        if self.ctx.hub.config().demo {
            router = router
                .route("/", get(crate::server::demo::page))
                .route("/index", get(crate::server::demo::page));
        }
        router
    }

    /// Serves on `listener` until `shutdown` completes; then refuses new connections, closes
    /// every client with 1001, waits for them (at most `close_timeout`), and returns. Every
    /// connection must complete its TLS handshake (with [`Server::with_tls`]) and its HTTP
    /// request head within `handshake_timeout`.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        if self.ctx.hub.history().is_some() {
            tokio::spawn(sweep_history(self.ctx.hub.downgrade()));
        }
        let serving = tokio::spawn(crate::server::listen::accept_loop(
            listener,
            self.router(),
            self.ctx.hub.clone(),
            self.tls.clone(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        shutdown.await;
        tracing::info!(
            clients = self.ctx.hub.online_count(),
            "shutting down: closing every client with 1001"
        );
        let _ = stop_tx.send(());
        self.ctx.hub.close_local(Close::going_away());
        let deadline = tokio::time::Instant::now() + self.ctx.hub.config().close_timeout;
        while self.connections.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Upgraded sockets are ours, not hyper's: the HTTP side ends as soon as it stops accepting.
        let _ = tokio::time::timeout(self.ctx.hub.config().close_timeout, serving).await;
        Ok(())
    }
}

/// Frees the history's expired messages every second, while the hub lives; after a sweep that
/// freed a lot, hands the allocator's free pages back to the system, so RSS follows the
/// history down and not only up.
async fn sweep_history(hub: crate::pool::hub::WeakHub) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        if hub.sweep_history() >= 1 << 20 {
            release_free_memory();
        }
    }
}

/// Returns the allocator's free pages to the system (glibc's `malloc_trim`): freed messages
/// otherwise stay in the process's heap arenas, reusable but counted in RSS. Under another
/// global allocator this does nothing; the `wsp` binary's jemalloc gives pages back by itself
/// (a background thread, within about a second).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn healthz(State(server): State<Server>) -> impl IntoResponse {
    let hub = &server.ctx.hub;
    Json(json!({
        "status": "ok",
        "server_id": hub.config().server_id,
        "clients": hub.online_count(),
        "connections": server.connections.load(Ordering::Relaxed),
        "dropped_frames": hub.dropped_frames(),
        "echo": hub.config().echo,
        "cluster": hub.cluster_status().map(|(backend, connected)| json!({ "backend": backend, "connected": connected })),
        "auth": hub.config().auth.is_some(),
        "tls": server.tls.is_some(),
        "refused": hub.refusals().counts().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

async fn metrics(State(server): State<Server>) -> Response {
    let hub = &server.ctx.hub;
    let Some(m) = hub.metrics() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cluster_clients = match hub.cluster_status() {
        Some(_) => hub.client_count().await.ok(),
        None => None,
    };
    let text = m.render(&crate::base::metrics::Gauges {
        node: hub.config().server_id.clone(),
        connections: server.connections.load(Ordering::Relaxed),
        clients: hub.online_count(),
        channels: hub.registry().channel_count(),
        cluster_clients,
        uptime: hub.uptime(),
        refused: hub.refusals().counts(),
        history: hub.history().map(|h| crate::base::metrics::HistoryGauges {
            bytes: h.bytes(),
            channels: h.len(),
            evictions: h.evictions(),
        }),
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    tracing::debug!(%status, %msg, "handshake refused");
    (status, format!("{msg}\n")).into_response()
}

async fn upgrade(
    State(server): State<Server>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let hub = server.ctx.hub.clone();
    let response = handshake(server, peer, req).await;
    if let Some(m) = hub.metrics() {
        m.handshake(response.status().as_u16());
    }
    response
}

/// Checks a WebSocket handshake and, when it passes, upgrades it and starts the connection.
async fn handshake(server: Server, peer: SocketAddr, mut req: Request) -> Response {
    let cfg = server.ctx.hub.config();
    let headers = req.headers();
    let accept = match handshake::accept_key(headers) {
        Ok(a) => a,
        Err((status, msg)) => return refuse(status, msg),
    };
    if let Err(msg) = check_origin(headers, &cfg.allowed_origins) {
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    let slot = Slot(server.connections.clone());
    if server.connections.fetch_add(1, Ordering::AcqRel) >= cfg.max_connections {
        server
            .ctx
            .hub
            .refusals()
            .note(cause::MAX_CONNECTIONS, &peer.to_string());
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "connection limit reached ({}); retry later or raise --max-connections",
                cfg.max_connections
            ),
        );
    }
    let Some(ip_slot) = server.per_ip.acquire(peer.ip(), cfg.max_connections_per_ip) else {
        server
            .ctx
            .hub
            .refusals()
            .note(cause::PER_IP, &peer.ip().to_string());
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many connections from {} (at most {}; raise --max-connections-per-ip)",
                peer.ip(),
                cfg.max_connections_per_ip
            ),
        );
    };
    let mut params = match ConnectParams::parse(
        req.uri().query().unwrap_or(""),
        headers,
        cfg.subprotocol_ids,
    ) {
        Ok(p) => p,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, msg),
    };
    if params.join.channels.len() > cfg.max_channels_per_client {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "at most {} channels per client (--max-channels-per-client)",
                cfg.max_channels_per_client
            ),
        );
    }
    let grant = match &cfg.auth {
        None => server.ctx.hub.open_grant(),
        Some(auth) => {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let verified = auth::token_of(params.token.as_deref(), authorization)
                .ok_or(auth::AuthError::Missing)
                .and_then(|t| auth.verify(t));
            match verified {
                Ok(g) => Arc::new(g),
                Err(e) => {
                    server
                        .ctx
                        .hub
                        .refusals()
                        .note(cause::AUTH, &format!("{peer}: {e}"));
                    return refuse(StatusCode::UNAUTHORIZED, e.to_string());
                }
            }
        }
    };
    if let Err(msg) = params.admit(&grant) {
        server
            .ctx
            .hub
            .refusals()
            .note(cause::HANDSHAKE_FORBIDDEN, &format!("{peer}: {msg}"));
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    let deflate = if cfg.compression {
        handshake::negotiate_deflate(headers)
    } else {
        None
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded (HTTP/1.1 is required for WebSocket)",
        );
    };
    let client = match server.ctx.hub.register_granted(params.id.clone(), grant).await {
        Ok(c) => c,
        Err(Error::DuplicateId(id)) => {
            return refuse(StatusCode::CONFLICT, format!("client id {id:?} is already connected; pick another id or omit `id` to get one assigned"))
        }
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::trace!(%peer, client_id = client.id(), "upgrading");
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = &params.protocol {
        // Browsers require one of their offered subprotocols back; wsPool echoes the whole value.
        if let Ok(v) = HeaderValue::from_str(p) {
            response = response.header(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    if let Some(d) = &deflate {
        response = response.header(header::SEC_WEBSOCKET_EXTENSIONS, d.response());
    }
    let ws_config = WsConfig {
        max_message: cfg.max_message_size,
        read_chunk: cfg.read_buffer_size,
        compression_level: cfg.compression_level,
        compression_min_size: cfg.compression_min_size,
    };
    let task = Task::new(
        on_upgrade,
        Start {
            ctx: server.ctx.clone(),
            client,
            join: params.join,
            deflate,
            ws_config,
            guards: Guards { slot, ip: ip_slot },
        },
    );
    server.ctx.alarms.ensure_ticking();
    tokio::spawn(task);
    response
        .body(axum::body::Body::empty())
        .unwrap_or_else(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Same-origin requests, requests without `Origin` (non-browser clients) and allow-listed
/// origins pass; any other cross-origin browser request is refused.
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> std::result::Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| "Origin header is not ASCII".to_string())?;
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(format!(
        "cross-origin request from {origin} refused; allow it with --allow-origin {origin}"
    ))
}

/// Fuzzing entry: parses a handshake's query and subprotocol; what is accepted obeys the
/// name rules.
#[doc(hidden)]
pub fn fuzz_connect_params(query: &str, subprotocol: &str) {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(subprotocol) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    if let Ok(p) = ConnectParams::parse(query, &h, true) {
        if let Some(id) = &p.id {
            assert!(check_id("id", id).is_ok());
        }
        for c in &p.join.channels {
            assert!(check_channel(c).is_ok());
        }
    }
}

/// The connect parameters of `/ws`.
#[derive(Debug, Default, Clone, PartialEq)]
struct ConnectParams {
    id: Option<String>,
    join: Join,
    protocol: Option<String>,
    /// `?token=` (never logged).
    token: Option<String>,
}

impl ConnectParams {
    fn parse(
        query: &str,
        headers: &HeaderMap,
        subprotocol_ids: bool,
    ) -> std::result::Result<Self, String> {
        let mut p = ConnectParams::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "id" => p.id = Some(v.into_owned()),
                "uid" => p.join.uid = Some(v.into_owned()),
                "token" => p.token = Some(v.into_owned()),
                "channel" => p.join.channels.push(v.into_owned()),
                "format" => {
                    p.join.format = Some(match &*v {
                        "json" => Format::Json,
                        "proto" | "protobuf" => Format::Proto,
                        other => {
                            return Err(format!("unknown format {other:?}: use `json` or `proto`"))
                        }
                    })
                }
                _ => {}
            }
        }
        if let Some(value) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
            let value = value
                .to_str()
                .map_err(|_| "Sec-WebSocket-Protocol is not ASCII".to_string())?;
            let first = value.split(',').next().unwrap_or("").trim().to_string();
            if subprotocol_ids && p.id.is_none() && !first.is_empty() {
                // wsPool form: `<id>_<ch1>_<ch2>`.
                let mut parts = first.split('_');
                p.id = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
                p.join
                    .channels
                    .extend(parts.filter(|s| !s.is_empty()).map(str::to_string));
            }
            if !first.is_empty() {
                p.protocol = Some(first);
            }
        }
        if let Some(id) = &p.id {
            check_id("client id", id)?;
        }
        if let Some(uid) = &p.join.uid {
            check_id("uid", uid)?;
        }
        for c in &p.join.channels {
            check_channel(c)?;
        }
        Ok(p)
    }

    /// Checks the request against the connection's grant, and applies the token's uid and
    /// client id.
    fn admit(&mut self, grant: &Grant) -> std::result::Result<(), String> {
        if !grant.authenticated() {
            return Ok(());
        }
        if let (Some(asked), Some(allowed)) = (&self.id, &grant.client_id) {
            if asked != allowed {
                return Err(format!(
                    "the token is for client id {allowed:?}, not {asked:?}"
                ));
            }
        }
        if self.id.is_none() {
            self.id = grant.client_id.clone();
        }
        if let (Some(asked), Some(uid)) = (&self.join.uid, &grant.uid) {
            if asked != uid {
                return Err(format!("the token is for uid {uid:?}, not {asked:?}"));
            }
        }
        self.join.uid = grant.uid.clone();
        if let Some(ch) = self
            .join
            .channels
            .iter()
            .find(|c| !grant.admin && !grant.channels.allows(c))
        {
            return Err(format!("channel {ch:?} is not in the token"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn wspool_subprotocol_gives_id_and_channels() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("alice_news_sport"),
        );
        let p = ConnectParams::parse("uid=u1", &h, true).unwrap();
        assert_eq!(p.id.as_deref(), Some("alice"));
        assert_eq!(p.join.channels, vec!["news", "sport"]);
        assert_eq!(p.join.uid.as_deref(), Some("u1"));
        assert_eq!(p.protocol.as_deref(), Some("alice_news_sport"));
    }

    #[test]
    fn query_id_wins_over_subprotocol_and_channels_repeat() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat"),
        );
        let p = ConnectParams::parse("id=bob&channel=a&channel=b%20c", &h, true).unwrap();
        assert_eq!(p.id.as_deref(), Some("bob"));
        assert_eq!(p.join.channels, vec!["a", "b c"]);
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, &[]).is_ok());
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(check_origin(&h, &[]).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(check_origin(&h, &[]).is_err());
        assert!(check_origin(&h, &["https://evil.example".into()]).is_ok());
    }
}
