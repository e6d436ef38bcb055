//! Cluster mode on Redis: many nodes act as one pool. Beside the pool layer: it reaches its
//! node only through [`Local`], and the other nodes through Redis.
//!
//! - **Presence** lives in Redis, in key scheme 2 (`keys`): the keys of one client, one
//!   channel, one uid each carry a hash tag made from that name, so in a Redis Cluster they
//!   spread over every slot. One Lua script (`presence.lua`) changes one client's keys
//!   atomically; what sits in other slots (a channel's members, a uid's clients, a node's
//!   sets) is changed by single commands in a fixed order (docs/CLUSTER.md says what a reader
//!   can see in between).
//! - **Fan-out** uses pub/sub, and reaches only nodes with recipients: a node subscribes to a
//!   channel's topic (`<prefix>:bc:<channel>`) while it has local members, so a channel
//!   broadcast is published once and Redis hands it to those nodes only; a send to several
//!   channels goes once to `<prefix>:all`; a unicast or uid send looks up the owning nodes and
//!   publishes to each one's topic (`<prefix>:node:<id>`); a send to everyone goes to
//!   `<prefix>:all`. With `sharded`, `SPUBLISH`/`SSUBSCRIBE` spread topics over the shards of a
//!   Redis Cluster.
//! - **Liveness**: each node refreshes `alive:<node>` (TTL `node_ttl`) every third of it; every
//!   node reaps the clients of nodes whose key expired, so a dead node's clients leave presence
//!   within about 1.5 × `node_ttl`. A node starting with a fixed id first reaps its own ghosts.
//! - **Outage**: the client reconnects with backoff; local clients keep being served (local
//!   deliveries never touch Redis); remote deliveries and presence changes made during the outage
//!   are lost (logged); queries fall back to this node's registry. On reconnect the node
//!   re-registers itself and every local client (ids, channels, uids, info) and resubscribes.
//! - **History** (with `--history-size`): one script (`history.lua`) gives a channel message
//!   its offset in each channel, keeps it and publishes it, atomically, so every node sees a
//!   channel's messages in offset order. The publishing node delivers its own messages when
//!   they come back from Redis, like every other node (that is what keeps the order the same
//!   everywhere). A node recovering a client reads the stream after the client's offset and
//!   merges it with what pub/sub brings. A channel's history keys and topic share the
//!   channel's slot; a send to several channels runs the script once per channel, in order.
//!
//! Files: `config` ([`RedisConfig`]), `keys` (key and topic names), `pubsub` (publishing,
//! subscriptions and the receive loop), `liveness` (heartbeat, reaping, rebuild after an
//! outage), `presence` (presence changes, queries and routing), `history` (the history
//! script's operations), `envelope` (what crosses Redis).

mod config;
mod envelope;
mod history;
mod keys;
mod liveness;
mod presence;
mod pubsub;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use futures_util::future::BoxFuture;

use crate::pool::cluster::{Cluster, ClusterEvent, Local};
use crate::pool::history::Fetched;
use crate::pool::presence::{Answer, Delivery, PresenceEvent, Query, Route};
pub use config::RedisConfig;
use envelope::Body;

/// A pool node backed by Redis. Build with [`RedisCluster::connect`], give it to
/// [`Hub::with_cluster`](crate::Hub::with_cluster), then call [`RedisCluster::start`] with
/// that hub's [`downgrade`](crate::Hub::downgrade).
pub struct RedisCluster {
    cfg: RedisConfig,
    node: String,
    client: Client,
    sub: SubscriberClient,
    script: Script,
    history_script: Script,
    /// History limits when the hub keeps channel history (set in `start`).
    history: OnceLock<Option<crate::pool::history::Limits>>,
    /// Random, per process: makes the epochs this node creates unique.
    nonce: String,
    /// The node's pool (set in `start`).
    pool: OnceLock<Arc<dyn Local>>,
    /// Broadcast topics this node is subscribed to (read by the pub/sub loop without waiting).
    topics: std::sync::Mutex<HashSet<String>>,
    /// Held while (un)subscribing: that awaits Redis and must not interleave for one channel.
    subscribing: tokio::sync::Mutex<()>,
}

/// How long a channel's epoch and newest offset outlive its last message in Redis, so a quiet
/// channel keeps its epoch (its messages themselves expire with `--history-ttl`).
const HISTORY_META_TTL: Duration = Duration::from_secs(24 * 3600);

fn cluster_err(e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Cluster(format!("redis: {e}"))
}

impl RedisCluster {
    /// Connects to Redis (two connections: commands, and pub/sub) as node `node`.
    pub async fn connect(cfg: RedisConfig, node: impl Into<String>) -> crate::Result<Arc<Self>> {
        let config = if cfg.clustered {
            Config::from_url_clustered(&cfg.url)
        } else {
            Config::from_url(&cfg.url)
        }
        .map_err(|e| crate::Error::Config(format!("--redis {:?}: {e}", cfg.url)))?;
        let mut b = Builder::from_config(config);
        b.with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(3);
            c.internal_command_timeout = Duration::from_secs(5);
        })
        .with_performance_config(|p| {
            // The pub/sub receive queue; a node that falls this far behind loses messages (logged).
            p.broadcast_channel_capacity = 1 << 16;
            p.default_command_timeout = Duration::from_secs(3);
        })
        // Reconnect forever: 100 ms doubling to 5 s.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let client = b.build().map_err(cluster_err)?;
        let sub = b.build_subscriber_client().map_err(cluster_err)?;
        client
            .init()
            .await
            .map_err(|e| cluster_err(format!("cannot connect to {}: {e}", cfg.url)))?;
        sub.init()
            .await
            .map_err(|e| cluster_err(format!("cannot connect to {}: {e}", cfg.url)))?;
        if cfg.prefix.contains(['{', '}']) {
            return Err(crate::Error::Config(format!(
                "--redis-prefix {:?}: braces are not allowed (wsp makes the hash tags itself)",
                cfg.prefix
            )));
        }
        Ok(Arc::new(Self {
            node: node.into(),
            client,
            sub,
            script: Script::from_lua(include_str!("presence.lua")),
            history_script: Script::from_lua(include_str!("history.lua")),
            history: OnceLock::new(),
            nonce: format!("{:08x}", rand::random::<u32>()),
            pool: OnceLock::new(),
            topics: std::sync::Mutex::new(HashSet::new()),
            subscribing: tokio::sync::Mutex::new(()),
            cfg,
        }))
    }

    /// Attaches the node's pool (`Hub::downgrade`, which does not keep the hub alive),
    /// registers the node, subscribes, and starts the liveness, janitor, pub/sub and reconnect
    /// tasks.
    pub async fn start(self: &Arc<Self>, pool: Arc<dyn Local>) -> crate::Result<()> {
        let _ = self.history.set(pool.history_limits());
        let _ = self.pool.set(pool);
        self.check_scheme().await?;
        let reaped = self.reap(&self.node).await?;
        if reaped > 0 {
            tracing::info!(reaped, node = %self.node, "removed ghosts of this node's previous run");
        }
        self.heartbeat().await?;
        self.sub.manage_subscriptions();
        self.subscribe(&self.node_topic(&self.node)).await?;
        self.subscribe(&self.all_topic()).await?;
        tokio::spawn(self.clone().receive());
        tokio::spawn(self.clone().liveness());
        let me = self.clone();
        self.client.on_reconnect(move |server| {
            let me = me.clone();
            async move {
                tracing::info!(%server, "redis reconnected: rebuilding this node's presence");
                tokio::spawn(async move { me.rebuild().await });
                Ok(())
            }
        });
        Ok(())
    }

    /// Fails fast while Redis is unreachable, so nothing local waits for a command timeout;
    /// what is skipped is restored by the rebuild after the reconnect.
    fn online(&self) -> crate::Result<()> {
        if self.client.is_connected() && self.sub.is_connected() {
            Ok(())
        } else {
            Err(crate::Error::Cluster(
                "redis unavailable (reconnecting)".into(),
            ))
        }
    }

    /// The node's pool while its hub lives.
    fn pool(&self) -> Option<&dyn Local> {
        self.pool.get().map(|p| &**p).filter(|p| p.alive())
    }

    /// Counts in the node's metrics.
    fn count(&self, event: ClusterEvent) {
        if let Some(pool) = self.pool() {
            pool.count(event);
        }
    }

    /// Counts a failed Redis operation and passes the error on.
    fn failed<T>(&self, r: crate::Result<T>) -> crate::Result<T> {
        if r.is_err() {
            self.count(ClusterEvent::Error);
        }
        r
    }

    /// Counts a publish: published when it went out, a Redis error when it did not.
    fn published<T>(&self, r: crate::Result<T>) -> crate::Result<T> {
        if r.is_ok() {
            self.count(ClusterEvent::Published);
        }
        self.failed(r)
    }

    fn limits(&self) -> Option<crate::pool::history::Limits> {
        self.history.get().copied().flatten()
    }

    /// Runs one operation of the presence script on one client's keys (one slot).
    async fn client_op<R: FromValue>(&self, id: &str, args: &[&str]) -> crate::Result<R> {
        self.online()?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let r = self
            .script
            .evalsha_with_reload::<R, _, _>(&self.client, self.client_keys(id), args)
            .await
            .map_err(cluster_err);
        self.failed(r)
    }
}

/// A change sent by another node for one of our clients: applied by this node's pool, with
/// this node's limits (the client is local here).
async fn apply_remote_event(pool: &dyn Local, event: PresenceEvent) {
    if let Err(e) = pool.apply(event.clone()).await {
        tracing::warn!(error = %e, ?event, "could not apply a change from another node");
    }
}

impl Cluster for RedisCluster {
    fn status(&self) -> (&'static str, bool) {
        ("redis", self.online().is_ok())
    }

    fn publish(&self, route: Route, delivery: Delivery) -> BoxFuture<'_, crate::Result<usize>> {
        Box::pin(async move {
            let local_fallback = matches!(route, Route::Channels(_) | Route::All | Route::Uid(_));
            match self.publish_impl(route, delivery).await {
                Ok(n) => Ok(n),
                Err(e) if local_fallback => {
                    // Local recipients were served before Redis was asked.
                    tracing::warn!(error = %e, "remote delivery failed: other nodes miss this message");
                    Ok(0)
                }
                Err(e) => Err(e),
            }
        })
    }

    fn record(&self, event: PresenceEvent) -> BoxFuture<'_, crate::Result<()>> {
        Box::pin(self.record_impl(event))
    }

    fn forward(&self, event: PresenceEvent) -> BoxFuture<'_, crate::Result<bool>> {
        Box::pin(async move {
            let id = match &event {
                PresenceEvent::Joined { client_id, .. }
                | PresenceEvent::Left { client_id, .. }
                | PresenceEvent::Bound { client_id, .. }
                | PresenceEvent::Unbound { client_id, .. }
                | PresenceEvent::InfoChanged { client_id, .. } => client_id.clone(),
                _ => return Ok(false),
            };
            self.online()?;
            let owner = self.owner(&id).await?;
            let Some(node) = owner.filter(|n| *n != self.node) else {
                return Ok(false);
            };
            let header = envelope::Header {
                origin: self.node.clone(),
                route: Route::Client(id),
                index: None,
                body: Body::Event { event },
            };
            self.publish_to(&self.node_topic(&node), envelope::encode(&header, b""))
                .await?;
            Ok(true)
        })
    }

    fn query(&self, query: Query) -> BoxFuture<'_, crate::Result<Answer>> {
        Box::pin(async move {
            match self.query_impl(&query).await {
                Ok(a) => Ok(a),
                Err(e) => {
                    let Some(pool) = self.pool() else {
                        return Err(e);
                    };
                    tracing::warn!(error = %e, "presence query answered from this node only");
                    Ok(pool.answer(&query))
                }
            }
        })
    }

    fn history_fetch(
        &self,
        channel: &str,
        after: Option<u64>,
    ) -> BoxFuture<'_, crate::Result<Option<Fetched>>> {
        let channel = channel.to_string();
        Box::pin(async move {
            let Some(limits) = self.limits() else {
                return Ok(None);
            };
            // Follow first: what is published after the read arrives over pub/sub. Without
            // the subscription a recovery could not be whole: fail the join instead.
            self.follow_channel(&channel, true).await?;
            let args: Vec<Value> = vec![
                "read".into(),
                after.map(|a| a.to_string()).unwrap_or_default().into(),
                (limits.size as i64).into(),
                (limits.ttl.as_millis() as i64).into(),
                (HISTORY_META_TTL.as_millis() as i64).into(),
                self.nonce.as_str().into(),
            ];
            self.history_op(&channel, args).await
        })
    }

    fn history_last(
        &self,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'_, crate::Result<Option<Option<(String, u64, Vec<crate::pool::history::Entry>)>>>>
    {
        let channel = channel.to_string();
        Box::pin(async move {
            let Some(limits) = self.limits() else {
                return Ok(None);
            };
            let args: Vec<Value> = vec![
                "last".into(),
                (limit as i64).into(),
                (limits.ttl.as_millis() as i64).into(),
            ];
            let fetched = self.history_op(&channel, args).await?;
            Ok(Some(fetched.map(|f| {
                let entries = f
                    .entries
                    .into_iter()
                    .map(|(offset, time_ms, frame)| {
                        crate::pool::history::Entry::new(offset, time_ms, frame)
                    })
                    .collect();
                (f.epoch, f.top, entries)
            })))
        })
    }

    fn footprint(
        &self,
        client_id: &str,
        channel: Option<&str>,
    ) -> BoxFuture<'_, crate::Result<Option<crate::pool::cluster::Footprint>>> {
        let (id, ch) = (client_id.to_string(), channel.unwrap_or("").to_string());
        Box::pin(async move {
            let v: Value = self.client_op(&id, &["footprint", &ch]).await?;
            let Value::Array(parts) = v else {
                return Ok(None);
            };
            let mut it = parts.into_iter();
            let channels: u64 = it.next().and_then(|v| v.convert().ok()).unwrap_or(0);
            let member: u64 = it.next().and_then(|v| v.convert().ok()).unwrap_or(0);
            let flat: Vec<String> = it.next().and_then(|v| v.convert().ok()).unwrap_or_default();
            let info = flat
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
                .collect();
            Ok(Some(crate::pool::cluster::Footprint {
                channels: channels as usize,
                member: member == 1,
                info,
            }))
        })
    }

    fn claim_id(&self, client_id: &str) -> BoxFuture<'_, crate::Result<bool>> {
        let id = client_id.to_string();
        Box::pin(async move {
            match self.claim(&id).await {
                Ok(ours) => Ok(ours),
                Err(e) => {
                    // Keep accepting connections during an outage; the rebuild claims them later.
                    tracing::warn!(error = %e, client_id = %id, "id not reserved cluster-wide (redis unavailable)");
                    Ok(true)
                }
            }
        })
    }
}
