//! `wsp serve` flags, environment variables and TOML config file, merged into a
//! `ServerConfig`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use wsp_server::redis::RedisConfig;
use wsp_server::{ServerConfig, SlowPolicy};

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
    pub fn resolve(self) -> anyhow::Result<(String, ServerConfig, Option<RedisConfig>)> {
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
        Ok((listen, c, redis))
    }
}
