//! Opening one bench connection: its URL, its source address (spread over 127.0.0.0/8 on
//! loopback), the handshake, and what a failure means.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsp_server::ws::{handshake, WebSocket, WsConfig, WsError};

use super::plan::{Plan, Scenario};
use super::wire::Protocol;

/// A bench client: the client side of wsp's own frame layer (the same code as the server's,
/// with permessage-deflate when `--compression`).
pub(super) type Ws = WebSocket<tokio::net::TcpStream>;

/// One client to open: its global index, role and URL.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) index: usize,
    pub(super) publisher: Option<usize>,
    pub(super) id: String,
    pub(super) url: String,
}

pub(super) fn client_url(plan: &Plan, index: usize, id: &str, receiver: bool) -> String {
    let base = &plan.urls[index % plan.urls.len()];
    if plan.protocol == Protocol::Shootout {
        return base.clone();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let subscribe = receiver && plan.scenario == Scenario::Broadcast;
    if subscribe {
        format!("{base}{sep}id={id}&channel={}", plan.channel)
    } else {
        format!("{base}{sep}id={id}")
    }
}

/// Source address for client `index`: 127.0.0.1 to 127.0.0.250 in turn, so each source has
/// its own ephemeral port range.
fn source_for(plan: &Plan, index: usize, target: &SocketAddr) -> Option<IpAddr> {
    (plan.spread_sources && target.ip().is_loopback() && target.is_ipv4())
        .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % 250) as u8)))
}

pub(super) async fn open(plan: &Plan, slot: &Slot) -> anyhow::Result<Ws> {
    let url = url::Url::parse(&slot.url).with_context(|| format!("bad URL {}", slot.url))?;
    let host = url.host_str().context("URL has no host")?;
    let port = url.port_or_known_default().context("URL has no port")?;
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .with_context(|| format!("{host} did not resolve"))?;
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source_for(plan, slot.index, &target) {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    let stream = sock.connect(target).await?;
    stream.set_nodelay(true)?;
    let request = slot.url.as_str().into_client_request()?;
    let mut config = WsConfig::default();
    config.max_message = 64 << 20;
    let (ws, _) = handshake::client(stream, request, plan.compression, &config).await?;
    if plan.compression && ws.deflate().is_none() {
        anyhow::bail!("the server declined permessage-deflate (start it with --compression)");
    }
    Ok(ws)
}

/// A short, stable description of a connect error, with what to do.
pub(super) fn describe(e: &anyhow::Error) -> String {
    if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
        return match io.raw_os_error() {
            Some(24) => "open-file limit reached (EMFILE): raise `ulimit -n` or split the load with --workers".into(),
            Some(99) => "no free source port (EADDRNOTAVAIL): use a loopback target so sources spread over 127.0.0.0/8, or fewer clients".into(),
            Some(111) => "connection refused: is the server running at that address?".into(),
            Some(104) => "connection reset by the server during the handshake (accept backlog full?): lower --ramp".into(),
            _ => format!("i/o error: {io}"),
        };
    }
    if let Some(WsError::Refused { status, body }) =
        e.chain().find_map(|c| c.downcast_ref::<WsError>())
    {
        return match status {
            503 => "server refused: HTTP 503 (its connection limit; raise --max-connections on the server)".into(),
            s => format!("server refused the handshake: HTTP {s} {body}"),
        };
    }
    format!("{e:#}")
}
