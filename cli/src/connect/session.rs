//! The connection behind the inspector: connects (headers, subprotocol, origin), reads and
//! writes frames, pings to measure the round trip, records every frame, and with `--reconnect`
//! comes back with exponential backoff and rejoins its channels recovering what it missed
//! (`recover.rs`). It talks to the UI through two bounded channels.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use wsp_server::ws::{handshake, Incoming, WebSocket, WsConfig, WsError};

use super::compose::Outgoing;
use super::decode::Decoder;
use super::model::{Dir, FrameRecord, Kind};
use super::recover::{Outcome, Tracker};

/// How to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The full URL (query parameters included).
    pub url: String,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    /// `Sec-WebSocket-Protocol`.
    pub subprotocol: Option<String>,
    /// `Origin`.
    pub origin: Option<String>,
    /// Reconnect after a disconnect.
    pub reconnect: bool,
    /// Offer permessage-deflate.
    pub compression: bool,
    /// Ping interval (0: never).
    pub ping_every: Duration,
    /// TLS settings for wss://.
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

/// What the session tells the UI.
#[derive(Debug)]
pub enum Event {
    /// Trying to connect (attempt number, from 1).
    Connecting(u32),
    /// Connected; what the server agreed to.
    Connected(Accepted),
    /// A frame went in or out.
    Frame(FrameRecord),
    /// A ping came back after this long.
    PingRtt(Duration),
    /// The connection ended; why; whether a reconnect follows (and after how long).
    Disconnected(String, Option<Duration>),
    /// After a reconnect, the server answered the rejoin of one channel.
    Recovery(Outcome),
    /// The session is over.
    Ended,
}

/// Capacity of the UI → session queue: typing cannot outrun it.
const OUT_QUEUE: usize = 256;
/// Capacity of the session → UI queue; a full queue slows reading the socket, not memory.
const EVENT_QUEUE: usize = 4096;

/// Starts the session task; returns the sender for outgoing frames and the event stream.
pub fn spawn(
    target: Target,
    recorder: Option<Recorder>,
) -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Event>) {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(run(target, recorder, out_rx, ev_tx));
    (out_tx, ev_rx)
}

/// Writes every frame as a JSON line (`--record`).
pub struct Recorder {
    file: std::io::BufWriter<std::fs::File>,
    decoder: Decoder,
}

impl Recorder {
    /// Creates (truncates) the file.
    pub fn create(path: &std::path::Path, decoder: Decoder) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            file: std::io::BufWriter::new(file),
            decoder,
        })
    }

    fn write(&mut self, r: &FrameRecord) {
        let _ = writeln!(self.file, "{}", r.to_json(&self.decoder));
        let _ = self.file.flush();
    }
}

/// The socket under the WebSocket: TCP, or TLS over TCP for `wss://`.
type Io = tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>;
/// One connection.
type Ws = WebSocket<Io>;

/// What the server agreed to in the handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The selected subprotocol.
    pub subprotocol: Option<String>,
    /// The permessage-deflate parameters, when compression was negotiated.
    pub compression: Option<String>,
}

/// Builds the upgrade request: the URL, `--header`s, subprotocol and origin.
fn request(t: &Target) -> anyhow::Result<Request<()>> {
    let mut req = t
        .url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad URL {}", t.url))?;
    let h = req.headers_mut();
    for line in &t.headers {
        let (k, v) = line
            .split_once(':')
            .with_context(|| format!("header {line:?}: write `Name: value`"))?;
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k
            .trim()
            .parse()
            .with_context(|| format!("header name {k:?}"))?;
        h.append(
            name,
            HeaderValue::from_str(v.trim()).with_context(|| format!("header value {v:?}"))?,
        );
    }
    if let Some(p) = &t.subprotocol {
        h.insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p)?);
    }
    if let Some(o) = &t.origin {
        h.insert("Origin", HeaderValue::from_str(o)?);
    }
    Ok(req)
}

/// Opens TCP (and TLS for `wss://`) to the URL's host.
async fn open(t: &Target, req: &Request<()>) -> anyhow::Result<Io> {
    let uri = req.uri();
    let host = uri.host().context("the URL has no host")?;
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    tcp.set_nodelay(true)?;
    if !tls {
        return Ok(Io::Plain(tcp));
    }
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .with_context(|| format!("{host} is not a valid TLS server name"))?;
    let stream = tokio_rustls::TlsConnector::from(t.tls.clone())
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}:{port}"))?;
    Ok(Io::Rustls(stream))
}

async fn connect(t: &Target) -> anyhow::Result<(Ws, Accepted)> {
    let req = request(t)?;
    let mut config = WsConfig::default();
    // The inspector shows what the server sends, whatever its size (up to 64 MiB).
    config.max_message = 64 << 20;
    let (ws, resp) = tokio::time::timeout(Duration::from_secs(10), async {
        let io = open(t, &req).await?;
        handshake::client(io, req, t.compression, &config)
            .await
            .map_err(|e| match e {
                e @ WsError::Refused { .. } => anyhow::Error::new(e),
                other => anyhow::Error::new(other).context(format!("connecting to {}", t.url)),
            })
    })
    .await
    .context("handshake timed out after 10 s")??;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let accepted = Accepted {
        subprotocol: header("sec-websocket-protocol"),
        compression: ws.deflate().and(header("sec-websocket-extensions")),
    };
    Ok((ws, accepted))
}

/// The message a composed frame is.
pub fn to_message(o: Outgoing) -> Message {
    match o {
        Outgoing::Text(t) => Message::text(t),
        Outgoing::Binary(b) => Message::binary(b),
        Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })),
    }
}

/// The record of a message crossing the socket.
pub fn record_of(dir: Dir, m: &Message) -> Option<FrameRecord> {
    Some(match m {
        Message::Text(t) => {
            FrameRecord::new(dir, Kind::Text, Bytes::copy_from_slice(t.as_bytes()), None)
        }
        Message::Binary(b) => FrameRecord::new(dir, Kind::Binary, b.clone(), None),
        Message::Ping(p) => FrameRecord::new(dir, Kind::Ping, p.clone(), None),
        Message::Pong(p) => FrameRecord::new(dir, Kind::Pong, p.clone(), None),
        Message::Close(c) => FrameRecord::new(
            dir,
            Kind::Close,
            Bytes::new(),
            Some(
                c.as_ref()
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new())),
            ),
        ),
        Message::Frame(_) => return None,
    })
}

async fn run(
    t: Target,
    mut recorder: Option<Recorder>,
    mut out_rx: mpsc::Receiver<Outgoing>,
    ev: mpsc::Sender<Event>,
) {
    let mut attempt = 0u32;
    let started = Instant::now();
    let mut tracker = Tracker::default();
    let mut reconnecting = false;
    loop {
        attempt += 1;
        let _ = ev.send(Event::Connecting(attempt)).await;
        // A reconnect rejoins its channels itself (with `since`), not through the URL.
        let target = if reconnecting {
            Target {
                url: tracker.reconnect_url(&t.url),
                ..t.clone()
            }
        } else {
            t.clone()
        };
        let why = match connect(&target).await {
            Ok((ws, accepted)) => {
                attempt = 0;
                let _ = ev.send(Event::Connected(accepted)).await;
                let io = Pumping {
                    recorder: &mut recorder,
                    out_rx: &mut out_rx,
                    ev: &ev,
                    tracker: &mut tracker,
                    rejoin: reconnecting,
                };
                match pump(ws, &t, io, started).await {
                    Pump::UserClosed(why) => {
                        let _ = ev.send(Event::Disconnected(why, None)).await;
                        break;
                    }
                    Pump::Lost(why) => why,
                    Pump::UiGone => break,
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if !t.reconnect {
            let _ = ev.send(Event::Disconnected(why, None)).await;
            break;
        }
        reconnecting = true;
        // 0.5 s, 1 s, 2 s … capped at 30 s.
        let backoff = Duration::from_millis(500)
            .saturating_mul(1 << attempt.min(6))
            .min(Duration::from_secs(30));
        let _ = ev.send(Event::Disconnected(why, Some(backoff))).await;
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            o = out_rx.recv() => if o.is_none() { break },
        }
    }
    let _ = ev.send(Event::Ended).await;
}

enum Pump {
    UserClosed(String),
    Lost(String),
    UiGone,
}

/// What one connection's pump works with.
struct Pumping<'a> {
    recorder: &'a mut Option<Recorder>,
    out_rx: &'a mut mpsc::Receiver<Outgoing>,
    ev: &'a mpsc::Sender<Event>,
    tracker: &'a mut Tracker,
    /// A reconnect: rejoin the channels first.
    rejoin: bool,
}

async fn pump(ws: Ws, t: &Target, io: Pumping<'_>, started: Instant) -> Pump {
    let Pumping {
        recorder,
        out_rx,
        ev,
        tracker,
        rejoin,
    } = io;
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(if t.ping_every.is_zero() {
        Duration::from_secs(3600 * 24)
    } else {
        t.ping_every
    });
    ping.tick().await;
    let mut we_closed = false;
    let emit = |r: FrameRecord, recorder: &mut Option<Recorder>| {
        if let Some(rec) = recorder.as_mut() {
            rec.write(&r);
        }
        r
    };
    if rejoin {
        for join in tracker.rejoin() {
            let m = Message::text(join);
            let rec = record_of(Dir::Out, &m);
            if let Err(e) = sink.send(m).await {
                return Pump::Lost(format!("rejoining failed: {e}"));
            }
            if let Some(r) = rec {
                let _ = ev.send(Event::Frame(emit(r, recorder))).await;
            }
        }
    }
    loop {
        tokio::select! {
            m = stream.next() => {
                let (m, compressed, wire_len) = match m {
                    Some(Ok(Incoming { message, compressed, wire_len, .. })) => (message, compressed, wire_len),
                    Some(Err(e)) => return Pump::Lost(format!("connection lost: {e}")),
                    None => return if we_closed { Pump::UserClosed("closed".into()) } else { Pump::Lost("connection closed by the server".into()) },
                };
                if let Message::Pong(p) = &m {
                    if p.len() == 8 {
                        let sent = u64::from_be_bytes(p[..8].try_into().expect("8 bytes"));
                        let now = started.elapsed().as_micros() as u64;
                        let _ = ev.send(Event::PingRtt(Duration::from_micros(now.saturating_sub(sent)))).await;
                    }
                }
                if t.reconnect {
                    if let Some(o) = tracker.observe(&m) {
                        let _ = ev.send(Event::Recovery(o)).await;
                    }
                }
                let close = if let Message::Close(c) = &m { Some(c.clone()) } else { None };
                if let Some(r) = record_of(Dir::In, &m) {
                    let r = emit(r.with_wire(wire_len, compressed), recorder);
                    if ev.send(Event::Frame(r)).await.is_err() {
                        return Pump::UiGone;
                    }
                }
                if let Some(c) = close {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                    let why = c.map(|f| format!("closed by the server: {} {} {}", u16::from(f.code), wsp_server::close::code_name(u16::from(f.code)), f.reason)).unwrap_or_else(|| "closed by the server".into());
                    return if we_closed { Pump::UserClosed("closed".into()) } else { Pump::Lost(why) };
                }
            }
            o = out_rx.recv() => {
                let Some(o) = o else { return Pump::UiGone };
                if matches!(o, Outgoing::Close(..)) {
                    we_closed = true;
                }
                let m = to_message(o);
                let rec = record_of(Dir::Out, &m);
                if let Err(e) = sink.send(m).await {
                    return Pump::Lost(format!("send failed: {e}"));
                }
                if let Some(r) = rec {
                    let r = emit(r, recorder);
                    let _ = ev.send(Event::Frame(r)).await;
                }
            }
            _ = ping.tick(), if !we_closed => {
                let stamp = (started.elapsed().as_micros() as u64).to_be_bytes().to_vec();
                if sink.send(Message::Ping(stamp.into())).await.is_err() {
                    return Pump::Lost("ping failed".into());
                }
            }
        }
    }
}
