//! Server configuration: every limit and timer of the pool, each with a documented default.

use std::time::Duration;

/// What happens when a client's outbound queue is full (the client reads slower than the pool
/// sends to it). Either way, other clients are never slowed down and memory never grows past the
/// queue's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowPolicy {
    /// Close the slow client with code 1008 ("outbound queue full"). The default: a client that
    /// cannot keep up learns it at once instead of silently missing messages.
    #[default]
    Close,
    /// Drop the new frame for that client only, and count it (see `/healthz` `dropped`).
    Drop,
}

impl std::str::FromStr for SlowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "close" => Ok(SlowPolicy::Close),
            "drop" => Ok(SlowPolicy::Drop),
            other => Err(format!(
                "unknown slow-reader policy {other:?}: use `close` or `drop`"
            )),
        }
    }
}

/// What a client may do to other clients with the built-in commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientRights {
    /// A client acts only on itself; naming another `client_id` in join, leave, bind_uid,
    /// unbind_uid, set_info, update_info, get_info or close_client needs an `admin` token.
    /// The default.
    #[default]
    SelfOnly,
    /// Any client may act on any other (wsPool's and GatewayWorker's behaviour): for trusted
    /// networks only.
    All,
}

impl std::str::FromStr for ClientRights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "self" => Ok(ClientRights::SelfOnly),
            "all" => Ok(ClientRights::All),
            other => Err(format!(
                "unknown client rights {other:?}: use `self` (the default) or `all`"
            )),
        }
    }
}

/// Configuration of a pool. Build it with `ServerConfig::default()` and the chainable setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest message (after reassembly of fragments) a client may send. Bigger ones close the
    /// connection with 1009. Default: 1 MiB.
    pub max_message_size: usize,
    /// Most connections at once; the next handshake is refused with HTTP 503. Default: 100,000.
    pub max_connections: usize,
    /// Frames queued for one client before the [`SlowPolicy`] applies. Default: 1,024.
    pub outbound_queue: usize,
    /// What to do when a client's outbound queue is full. Default: [`SlowPolicy::Close`].
    pub slow_policy: SlowPolicy,
    /// How often the server pings each client. Default: 10 s.
    pub ping_interval: Duration,
    /// A client silent (no frame of any kind, pongs included) for longer than this is closed with
    /// 1008. Default: 30 s (wsrv's rule).
    pub heartbeat_timeout: Duration,
    /// Longest a write to one client may take before the client is dropped. Default: 10 s.
    pub write_timeout: Duration,
    /// How long to wait for a peer's close reply, and for all clients at shutdown. Default: 3 s.
    pub close_timeout: Duration,
    /// Origins allowed besides the server's own host. `*` allows any. Requests without an
    /// `Origin` header (non-browser clients) are always allowed. Default: empty (same-origin
    /// only, like gorilla/websocket and gows).
    pub allowed_origins: Vec<String>,
    /// A text frame sent to each client right after the welcome frame (the gin hub's handshake
    /// message). Default: none.
    pub welcome_message: Option<String>,
    /// Echo mode: every data frame comes back unchanged; no welcome frame, no commands. For
    /// conformance suites (Autobahn). Default: off.
    pub echo: bool,
    /// Read the wsPool `Sec-WebSocket-Protocol: <id>_<ch1>_<ch2>` form when the query has no
    /// `id`. Default: on.
    pub subprotocol_ids: bool,
    /// This node's id, stamped in `server_id` of welcome frames and prefixed to generated
    /// client ids. Default: random.
    pub server_id: String,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it. Default: off
    /// (gows' `UseFlate` is opt-in too): compression costs CPU for every message big enough.
    pub compression: bool,
    /// With compression on, messages smaller than this go uncompressed (gows'
    /// `SetMinCompressSize`). Default: 512 bytes.
    pub compression_min_size: usize,
    /// zlib compression level, 1 (fastest) to 9 (smallest). Default: 1.
    pub compression_level: u32,
    /// Ignored since reads go through one 64 KiB buffer per thread and a connection keeps only
    /// a partial frame's bytes (an idle connection holds no read buffer). Kept so configurations
    /// that set it still build. Default: 1 KiB.
    pub read_buffer_size: usize,
    /// JWT authentication of every handshake; `None` runs open (anyone connects, as any free
    /// id). Default: none.
    pub auth: Option<crate::base::jwt::Auth>,
    /// What a client may do to other clients. Default: [`ClientRights::SelfOnly`].
    pub client_rights: ClientRights,
    /// Longest time from the TCP accept to a complete HTTP request head (TLS handshake
    /// included); a slower or partial request is dropped. Default: 10 s.
    pub handshake_timeout: Duration,
    /// Most WebSocket connections from one IP address; the next handshake gets HTTP 429.
    /// 0: no limit. Default: 1,000.
    pub max_connections_per_ip: usize,
    /// Inbound frames per second one client may send, sustained (data frames, fragments and
    /// pings). Over it (past the burst) a frame is dropped with an error reply (429); a client
    /// that sends another burst's worth over the limit is closed with 1008. 0: no limit.
    /// Default: 100.
    pub max_messages_per_sec: u32,
    /// Frames a client may send at once above the sustained rate. Default: 200.
    pub message_burst: u32,
    /// Most channels one client may be in. Default: 128.
    pub max_channels_per_client: usize,
    /// Largest info (sum of key and value bytes) a client may hold. Default: 4 KiB.
    pub max_info_bytes: usize,
    /// Most channels one send may name (`send_to_channel`, an addressed SendMsg, the API);
    /// more is refused with 413 before anything is delivered. A send costs one publish per
    /// channel (a Redis command in cluster mode, a history entry with history on), so this
    /// bounds what one frame can make the pool do. Default: 16.
    pub max_channels_per_send: usize,
    /// The key of the server API (`POST /api`, `POST /api/batch`, with
    /// `Authorization: Bearer KEY`). `None`: the API is off. Default: none.
    pub api_key: Option<crate::base::auth::ApiKey>,
    /// Count and serve Prometheus metrics at `GET /metrics`. Default: on (the metrics carry no
    /// client id, uid or channel name; see `metrics.rs`).
    pub metrics: bool,
    /// Serve the demo page (a browser client of the pool) at `GET /` and `GET /index`.
    /// Default: off.
    pub demo: bool,
    /// Channel history: messages kept per channel for recovery (`join` with `since`) and the
    /// `history` command; every channel message then carries its offset and epoch. 0: off.
    /// Default: off. Must be below `outbound_queue` (a recovery is queued at once).
    pub history_size: usize,
    /// Oldest message kept in a channel's history. Default: 5 minutes.
    pub history_ttl: Duration,
    /// Most channels with a history at once; past it, the one published to least recently
    /// loses its history (its next message starts a new epoch). Default: 10,000. The memory
    /// the history can hold is at most `history_max_channels × history_size` messages.
    pub history_max_channels: usize,
    /// Most bytes of messages the history keeps on this node, over all channels; past it the
    /// channels published to least recently lose their history first (their next message
    /// starts a new epoch). Default: 256 MiB. Must be at least `max_message_size`.
    pub history_max_bytes: usize,
    /// `Host` names accepted besides loopback ones when the server listens on a loopback
    /// address (`localhost`, `127.x.y.z`, `[::1]`, with any port). A page on a foreign name
    /// that resolves to 127.0.0.1 (DNS rebinding) is refused with 403 unless its name is
    /// here; `*` accepts any name. A server on any other address does not check `Host`.
    /// Default: empty.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_connections: 100_000,
            outbound_queue: 1024,
            slow_policy: SlowPolicy::Close,
            ping_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(3),
            allowed_origins: Vec::new(),
            welcome_message: None,
            echo: false,
            subprotocol_ids: true,
            server_id: random_server_id(),
            read_buffer_size: 1024,
            compression: false,
            compression_min_size: 512,
            compression_level: 1,
            auth: None,
            client_rights: ClientRights::SelfOnly,
            handshake_timeout: Duration::from_secs(10),
            max_connections_per_ip: 1000,
            max_messages_per_sec: 100,
            message_burst: 200,
            max_channels_per_client: 128,
            max_info_bytes: 4096,
            max_channels_per_send: 16,
            api_key: None,
            metrics: true,
            demo: false,
            history_size: 0,
            history_ttl: Duration::from_secs(300),
            history_max_channels: 10_000,
            history_max_bytes: 256 << 20,
            allowed_hosts: Vec::new(),
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $( $(#[$doc])* pub fn $name(mut self, $name: $ty) -> Self { self.$name = $name; self } )*
    };
}

impl ServerConfig {
    setters! {
        /// Sets [`Self::max_message_size`].
        max_message_size: usize,
        /// Sets [`Self::max_connections`].
        max_connections: usize,
        /// Sets [`Self::outbound_queue`].
        outbound_queue: usize,
        /// Sets [`Self::slow_policy`].
        slow_policy: SlowPolicy,
        /// Sets [`Self::ping_interval`].
        ping_interval: Duration,
        /// Sets [`Self::heartbeat_timeout`].
        heartbeat_timeout: Duration,
        /// Sets [`Self::write_timeout`].
        write_timeout: Duration,
        /// Sets [`Self::close_timeout`].
        close_timeout: Duration,
        /// Sets [`Self::allowed_origins`].
        allowed_origins: Vec<String>,
        /// Sets [`Self::welcome_message`].
        welcome_message: Option<String>,
        /// Sets [`Self::echo`].
        echo: bool,
        /// Sets [`Self::subprotocol_ids`].
        subprotocol_ids: bool,
        /// Sets [`Self::server_id`].
        server_id: String,
        /// Sets [`Self::read_buffer_size`].
        read_buffer_size: usize,
        /// Sets [`Self::compression`].
        compression: bool,
        /// Sets [`Self::compression_min_size`].
        compression_min_size: usize,
        /// Sets [`Self::compression_level`].
        compression_level: u32,
        /// Sets [`Self::auth`].
        auth: Option<crate::base::jwt::Auth>,
        /// Sets [`Self::client_rights`].
        client_rights: ClientRights,
        /// Sets [`Self::handshake_timeout`].
        handshake_timeout: Duration,
        /// Sets [`Self::max_connections_per_ip`].
        max_connections_per_ip: usize,
        /// Sets [`Self::max_messages_per_sec`].
        max_messages_per_sec: u32,
        /// Sets [`Self::message_burst`].
        message_burst: u32,
        /// Sets [`Self::max_channels_per_client`].
        max_channels_per_client: usize,
        /// Sets [`Self::max_info_bytes`].
        max_info_bytes: usize,
        /// Sets [`Self::max_channels_per_send`].
        max_channels_per_send: usize,
        /// Sets [`Self::api_key`].
        api_key: Option<crate::base::auth::ApiKey>,
        /// Sets [`Self::metrics`].
        metrics: bool,
        /// Sets [`Self::demo`].
        demo: bool,
        /// Sets [`Self::history_size`].
        history_size: usize,
        /// Sets [`Self::history_ttl`].
        history_ttl: Duration,
        /// Sets [`Self::history_max_channels`].
        history_max_channels: usize,
        /// Sets [`Self::history_max_bytes`].
        history_max_bytes: usize,
        /// Sets [`Self::allowed_hosts`].
        allowed_hosts: Vec<String>,
    }

    /// Checks that every value is in range; the error names the field and what to do.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_string()));
        if self.outbound_queue == 0 {
            return bad("outbound_queue must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_message_size < 16 {
            return bad("max_message_size must be at least 16 bytes");
        }
        if self.ping_interval.is_zero() || self.heartbeat_timeout.is_zero() {
            return bad("ping_interval and heartbeat_timeout must be above zero");
        }
        if self.heartbeat_timeout <= self.ping_interval {
            return bad("heartbeat_timeout must be longer than ping_interval, or every client is closed between two pings");
        }
        if !(1..=9).contains(&self.compression_level) {
            return bad("compression_level must be 1 (fastest) to 9 (smallest)");
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout must be above zero");
        }
        if self.max_messages_per_sec > 0 && self.message_burst == 0 {
            return bad("message_burst must be at least 1 when max_messages_per_sec is set");
        }
        if self.max_channels_per_client == 0 {
            return bad("max_channels_per_client must be at least 1");
        }
        if self.max_channels_per_send == 0 {
            return bad("max_channels_per_send must be at least 1");
        }
        if let Some(k) = &self.api_key {
            if k.as_str().len() < 16 {
                return bad("api_key must be at least 16 characters (e.g. `openssl rand -hex 16`)");
            }
        }
        if self.history_size > 0 {
            if self.history_size >= self.outbound_queue {
                return bad("history_size must be below outbound_queue: a recovery queues up to history_size messages at once (raise --outbound-queue or lower --history-size)");
            }
            if self.history_ttl.is_zero() || self.history_max_channels == 0 {
                return bad("history_ttl and history_max_channels must be above zero");
            }
            if self.history_max_bytes < self.max_message_size {
                return bad(
                    "history_max_bytes must be at least max_message_size (one message must fit)",
                );
            }
        }
        if self.server_id.is_empty() || self.server_id.contains(char::is_whitespace) {
            return bad("server_id must be non-empty and without spaces");
        }
        Ok(())
    }
}

fn random_server_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}
