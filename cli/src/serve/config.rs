//! `wsp serve` flags, environment variables and TOML config file, merged into a
//! `ServerConfig`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use wsp_server::auth::Auth;
use wsp_server::redis::RedisConfig;
use wsp_server::{ClientRights, ServerConfig, SlowPolicy};

/// Flags of `wsp serve`. Every flag also reads a `WSP_*` environment variable.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "WSP_LISTEN")]
    listen: Option<String>,
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "WSP_CONFIG")]
    config: Option<PathBuf>,
    /// Largest message a client may send, in bytes (bigger: close 1009). Default 1048576.
    #[arg(long, env = "WSP_MAX_MESSAGE_SIZE")]
    max_message_size: Option<usize>,
    /// Most connections at once (then HTTP 503). Default 100000.
    #[arg(long, env = "WSP_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Frames queued per client before the slow-reader policy applies. Default 1024.
    #[arg(long, env = "WSP_OUTBOUND_QUEUE")]
    outbound_queue: Option<usize>,
    /// When a client's queue is full: `close` it with 1008, or `drop` the frame. Default close.
    #[arg(long, env = "WSP_SLOW_POLICY")]
    slow_policy: Option<SlowPolicy>,
    /// How often to ping each client, e.g. `10s`.
    #[arg(long, env = "WSP_PING_INTERVAL", value_parser = humantime::parse_duration)]
    ping_interval: Option<Duration>,
    /// Close a client silent for longer than this (1008), e.g. `30s`.
    #[arg(long, env = "WSP_HEARTBEAT_TIMEOUT", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Option<Duration>,
    /// Drop a client whose socket takes longer than this to accept a write, e.g. `10s`.
    #[arg(long, env = "WSP_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    write_timeout: Option<Duration>,
    /// Allow browser connections from this origin (repeatable; `*` allows any).
    #[arg(
        long = "allow-origin",
        env = "WSP_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    allow_origins: Vec<String>,
    /// A text frame sent to every client after the welcome frame.
    #[arg(long, env = "WSP_WELCOME_MESSAGE")]
    welcome_message: Option<String>,
    /// Echo mode: every data frame comes back unchanged (for conformance suites).
    #[arg(long, env = "WSP_ECHO")]
    echo: bool,
    /// Negotiate permessage-deflate with clients that offer it (RFC 7692).
    #[arg(long, env = "WSP_COMPRESSION")]
    compression: bool,
    /// With --compression, messages smaller than this many bytes go uncompressed. Default 512.
    #[arg(long, env = "WSP_COMPRESSION_MIN_SIZE")]
    compression_min_size: Option<usize>,
    /// With --compression, the zlib level: 1 (fastest) to 9 (smallest). Default 1.
    #[arg(long, env = "WSP_COMPRESSION_LEVEL")]
    compression_level: Option<u32>,
    /// This node's id (prefix of generated client ids). Default random.
    #[arg(long, env = "WSP_SERVER_ID")]
    server_id: Option<String>,
    /// Do not read wsPool's `Sec-WebSocket-Protocol: <id>_<ch1>_<ch2>` form.
    #[arg(long, env = "WSP_NO_SUBPROTOCOL_IDS")]
    no_subprotocol_ids: bool,
    /// Join a cluster through Redis, e.g. `redis://127.0.0.1:6379`.
    #[arg(long, env = "WSP_REDIS")]
    redis: Option<String>,
    /// The --redis address is a node of a Redis Cluster (implies sharded pub/sub).
    #[arg(long, env = "WSP_REDIS_CLUSTER")]
    redis_cluster: bool,
    /// Use Redis 7 sharded pub/sub (SPUBLISH) even without --redis-cluster.
    #[arg(long, env = "WSP_SHARDED_PUBSUB")]
    sharded_pubsub: bool,
    /// Prefix of the cluster's Redis keys and topics. Default `wsp`.
    #[arg(long, env = "WSP_REDIS_PREFIX")]
    redis_prefix: Option<String>,
    /// A node silent this long is dead and its clients leave presence, e.g. `10s`.
    #[arg(long, env = "WSP_NODE_TTL", value_parser = humantime::parse_duration)]
    node_ttl: Option<Duration>,
    /// Require a JWT signed with this HS256 secret on every handshake (`?token=` or
    /// `Authorization: Bearer`). Claims: docs/PROTOCOL.md.
    #[arg(long, env = "WSP_AUTH_JWT_SECRET", hide_env_values = true)]
    auth_jwt_secret: Option<String>,
    /// Require a JWT signed by the private half of this PEM public key (RS256 or ES256).
    #[arg(long, env = "WSP_AUTH_JWT_PUBLIC_KEY")]
    auth_jwt_public_key: Option<PathBuf>,
    /// With JWT auth: accept only tokens whose `iss` is this issuer.
    #[arg(long, env = "WSP_AUTH_JWT_ISSUER")]
    auth_jwt_issuer: Option<String>,
    /// With JWT auth: accept only tokens whose `aud` names this audience.
    #[arg(long, env = "WSP_AUTH_JWT_AUDIENCE")]
    auth_jwt_audience: Option<String>,
    /// On a loopback address, also accept requests naming this `Host` (repeatable; `*`: any).
    /// Other names get 403 there: a foreign page reaching 127.0.0.1 is DNS rebinding.
    #[arg(
        long = "allowed-host",
        env = "WSP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// What a client may do to others: `self` (default: only itself; acting on others needs
    /// an admin token) or `all` (any client acts on any other; trusted networks only).
    #[arg(long, env = "WSP_CLIENT_RIGHTS")]
    client_rights: Option<ClientRights>,
    /// Serve wss:// and https:// with this PEM certificate chain (with --tls-key); SIGHUP
    /// reloads both files.
    #[arg(long, env = "WSP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "WSP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Drop a connection whose TLS handshake and HTTP request head take longer, e.g. `10s`.
    #[arg(long, env = "WSP_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    handshake_timeout: Option<Duration>,
    /// Most connections from one IP address (then HTTP 429); 0 for no limit. Default 1000.
    #[arg(long, env = "WSP_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Frames per second a client may send, sustained (over it: dropped with a 429 error, then
    /// close 1008); 0 for no limit. Default 100.
    #[arg(long, env = "WSP_MAX_MESSAGES_PER_SEC")]
    max_messages_per_sec: Option<u32>,
    /// Frames a client may send at once above that rate. Default 200.
    #[arg(long, env = "WSP_MESSAGE_BURST")]
    message_burst: Option<u32>,
    /// Most channels one client may be in (then 429). Default 128.
    #[arg(long, env = "WSP_MAX_CHANNELS_PER_CLIENT")]
    max_channels_per_client: Option<usize>,
    /// Largest info a client may hold, in bytes of keys and values (then 413). Default 4096.
    #[arg(long, env = "WSP_MAX_INFO_BYTES")]
    max_info_bytes: Option<usize>,
    /// Most channels one send may name (then 413); each costs a publish. Default 16.
    #[arg(long, env = "WSP_MAX_CHANNELS_PER_SEND")]
    max_channels_per_send: Option<usize>,
    /// Turn on the server API (`POST /api`, `POST /api/batch`) with this key, sent as
    /// `Authorization: Bearer KEY` (at least 16 characters). Without it the API is off.
    #[arg(long, env = "WSP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Do not count or serve Prometheus metrics (`GET /metrics` is on by default).
    #[arg(long, env = "WSP_NO_METRICS")]
    no_metrics: bool,
    /// Serve the demo page at `/` (a browser client: `/?id=alice&channel=news`).
    #[arg(long, env = "WSP_DEMO")]
    demo: bool,
    /// Keep the last N messages of every channel, so clients recover what they missed when
    /// they reconnect (`join` with `since`; the `history` command). 0 or absent: off.
    #[arg(long, env = "WSP_HISTORY_SIZE")]
    history_size: Option<usize>,
    /// With --history-size: the oldest message kept, e.g. `5m`. Default 5m.
    #[arg(long, env = "WSP_HISTORY_TTL", value_parser = humantime::parse_duration)]
    history_ttl: Option<Duration>,
    /// With --history-size: most channels with a history at once (the history holds at most
    /// this many × --history-size messages). Default 10000.
    #[arg(long, env = "WSP_HISTORY_MAX_CHANNELS")]
    history_max_channels: Option<usize>,
    /// With --history-size: most bytes of messages kept over all channels; the channels
    /// published to least recently lose their history first. Default 268435456 (256 MiB).
    #[arg(long, env = "WSP_HISTORY_MAX_BYTES")]
    history_max_bytes: Option<usize>,
}

/// TLS files to serve with, when set.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Everything `wsp serve` runs with, resolved.
#[derive(Debug)]
pub struct Resolved {
    /// Address to listen on.
    pub listen: String,
    /// The pool's configuration.
    pub config: ServerConfig,
    /// Cluster settings, when clustering.
    pub redis: Option<RedisConfig>,
    /// TLS files, when serving wss://.
    pub tls: Option<TlsFiles>,
}

/// The TOML config file: the same settings as the flags, durations as strings (`"30s"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    max_message_size: Option<usize>,
    max_connections: Option<usize>,
    outbound_queue: Option<usize>,
    slow_policy: Option<String>,
    ping_interval: Option<String>,
    heartbeat_timeout: Option<String>,
    write_timeout: Option<String>,
    allow_origins: Option<Vec<String>>,
    welcome_message: Option<String>,
    echo: Option<bool>,
    compression: Option<bool>,
    compression_min_size: Option<usize>,
    compression_level: Option<u32>,
    server_id: Option<String>,
    subprotocol_ids: Option<bool>,
    redis: Option<String>,
    redis_cluster: Option<bool>,
    sharded_pubsub: Option<bool>,
    redis_prefix: Option<String>,
    node_ttl: Option<String>,
    auth_jwt_secret: Option<String>,
    auth_jwt_public_key: Option<PathBuf>,
    auth_jwt_issuer: Option<String>,
    auth_jwt_audience: Option<String>,
    allowed_hosts: Option<Vec<String>>,
    client_rights: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    handshake_timeout: Option<String>,
    max_connections_per_ip: Option<usize>,
    max_messages_per_sec: Option<u32>,
    message_burst: Option<u32>,
    max_channels_per_client: Option<usize>,
    max_info_bytes: Option<usize>,
    max_channels_per_send: Option<usize>,
    api_key: Option<String>,
    metrics: Option<bool>,
    demo: Option<bool>,
    history_size: Option<usize>,
    history_ttl: Option<String>,
    history_max_channels: Option<usize>,
    history_max_bytes: Option<usize>,
}

fn duration(name: &str, v: Option<String>) -> anyhow::Result<Option<Duration>> {
    v.map(|s| {
        humantime::parse_duration(&s)
            .with_context(|| format!("`{name}` = {s:?} is not a duration such as \"30s\""))
    })
    .transpose()
}

impl ServeArgs {
    /// Args for an echo server on `listen` (used by tests and the embedded bench server).
    #[allow(dead_code)]
    pub fn listen_on(listen: &str) -> Self {
        Self {
            listen: Some(listen.into()),
            ..Self::default()
        }
    }

    /// Merges flags, environment and file into the listen address, a `ServerConfig`, and the
    /// Redis settings when clustering.
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut c = ServerConfig::default();
        let pick = |a: Option<usize>, b: Option<usize>, d: usize| a.or(b).unwrap_or(d);
        c.max_message_size = pick(
            self.max_message_size,
            file.max_message_size,
            c.max_message_size,
        );
        c.max_connections = pick(
            self.max_connections,
            file.max_connections,
            c.max_connections,
        );
        c.outbound_queue = pick(self.outbound_queue, file.outbound_queue, c.outbound_queue);
        c.slow_policy = match (self.slow_policy, file.slow_policy) {
            (Some(p), _) => p,
            (None, Some(s)) => s
                .parse()
                .map_err(anyhow::Error::msg)
                .context("`slow_policy` in config file")?,
            (None, None) => c.slow_policy,
        };
        c.ping_interval = self
            .ping_interval
            .or(duration("ping_interval", file.ping_interval)?)
            .unwrap_or(c.ping_interval);
        c.heartbeat_timeout = self
            .heartbeat_timeout
            .or(duration("heartbeat_timeout", file.heartbeat_timeout)?)
            .unwrap_or(c.heartbeat_timeout);
        c.write_timeout = self
            .write_timeout
            .or(duration("write_timeout", file.write_timeout)?)
            .unwrap_or(c.write_timeout);
        c.allowed_origins = if self.allow_origins.is_empty() {
            file.allow_origins.unwrap_or_default()
        } else {
            self.allow_origins
        };
        c.welcome_message = self.welcome_message.or(file.welcome_message);
        c.echo = self.echo || file.echo.unwrap_or(false);
        c.compression = self.compression || file.compression.unwrap_or(false);
        c.compression_min_size = pick(
            self.compression_min_size,
            file.compression_min_size,
            c.compression_min_size,
        );
        c.compression_level = self
            .compression_level
            .or(file.compression_level)
            .unwrap_or(c.compression_level);
        if let Some(id) = self.server_id.or(file.server_id) {
            c.server_id = id;
        }
        c.subprotocol_ids = !self.no_subprotocol_ids && file.subprotocol_ids.unwrap_or(true);
        c.auth = match (
            self.auth_jwt_secret.or(file.auth_jwt_secret),
            self.auth_jwt_public_key.or(file.auth_jwt_public_key),
        ) {
            (Some(_), Some(_)) => {
                anyhow::bail!("give --auth-jwt-secret or --auth-jwt-public-key, not both")
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    anyhow::bail!("--auth-jwt-secret must be at least 32 bytes (HS256 needs a strong secret; e.g. `openssl rand -hex 32`)");
                }
                Some(Auth::hs256(secret.as_bytes()))
            }
            (None, Some(path)) => {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("reading --auth-jwt-public-key {}", path.display()))?;
                Some(
                    Auth::public_key_pem(&pem)
                        .with_context(|| format!("--auth-jwt-public-key {}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        let issuer = self.auth_jwt_issuer.or(file.auth_jwt_issuer);
        let audience = self.auth_jwt_audience.or(file.auth_jwt_audience);
        c.auth = match c.auth {
            Some(mut auth) => {
                if let Some(iss) = &issuer {
                    auth = auth.with_issuer(iss);
                }
                if let Some(aud) = &audience {
                    auth = auth.with_audience(aud);
                }
                Some(auth)
            }
            None if issuer.is_some() || audience.is_some() => anyhow::bail!(
                "--auth-jwt-issuer and --auth-jwt-audience need --auth-jwt-secret or --auth-jwt-public-key"
            ),
            None => None,
        };
        c.allowed_hosts = if self.allowed_hosts.is_empty() {
            file.allowed_hosts.unwrap_or_default()
        } else {
            self.allowed_hosts
        };
        c.client_rights = match (self.client_rights, file.client_rights) {
            (Some(r), _) => r,
            (None, Some(s)) => s
                .parse()
                .map_err(anyhow::Error::msg)
                .context("`client_rights` in config file")?,
            (None, None) => c.client_rights,
        };
        c.handshake_timeout = self
            .handshake_timeout
            .or(duration("handshake_timeout", file.handshake_timeout)?)
            .unwrap_or(c.handshake_timeout);
        c.max_connections_per_ip = pick(
            self.max_connections_per_ip,
            file.max_connections_per_ip,
            c.max_connections_per_ip,
        );
        c.max_messages_per_sec = self
            .max_messages_per_sec
            .or(file.max_messages_per_sec)
            .unwrap_or(c.max_messages_per_sec);
        c.message_burst = self
            .message_burst
            .or(file.message_burst)
            .unwrap_or(c.message_burst);
        c.max_channels_per_client = pick(
            self.max_channels_per_client,
            file.max_channels_per_client,
            c.max_channels_per_client,
        );
        c.max_info_bytes = pick(self.max_info_bytes, file.max_info_bytes, c.max_info_bytes);
        c.max_channels_per_send = pick(
            self.max_channels_per_send,
            file.max_channels_per_send,
            c.max_channels_per_send,
        );
        c.api_key = self.api_key.or(file.api_key).map(wsp_server::ApiKey::new);
        c.metrics = !self.no_metrics && file.metrics.unwrap_or(true);
        c.demo = self.demo || file.demo.unwrap_or(false);
        c.history_size = pick(self.history_size, file.history_size, c.history_size);
        c.history_ttl = self
            .history_ttl
            .or(duration("history_ttl", file.history_ttl)?)
            .unwrap_or(c.history_ttl);
        c.history_max_channels = pick(
            self.history_max_channels,
            file.history_max_channels,
            c.history_max_channels,
        );
        c.history_max_bytes = pick(
            self.history_max_bytes,
            file.history_max_bytes,
            c.history_max_bytes,
        );
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both --tls-cert and --tls-key"),
        };
        if c.echo {
            // Conformance suites send up to 16 MiB messages.
            c.max_message_size = c
                .max_message_size
                .max(self.max_message_size.unwrap_or(64 << 20));
        }
        let redis = match self.redis.or(file.redis) {
            Some(url) => {
                let clustered = self.redis_cluster || file.redis_cluster.unwrap_or(false);
                let mut r = RedisConfig::new(url).clustered(clustered);
                if self.sharded_pubsub || file.sharded_pubsub.unwrap_or(false) {
                    r = r.sharded(true);
                }
                if let Some(p) = self.redis_prefix.or(file.redis_prefix) {
                    r = r.prefix(p);
                }
                if let Some(ttl) = self.node_ttl.or(duration("node_ttl", file.node_ttl)?) {
                    if ttl < Duration::from_millis(300) {
                        anyhow::bail!("--node-ttl must be at least 300ms");
                    }
                    r = r.node_ttl(ttl);
                }
                Some(r)
            }
            None => None,
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        Ok(Resolved {
            listen,
            config: c,
            redis,
            tls,
        })
    }
}
