//! Cluster mode on Redis: many nodes act as one pool.
//!
//! - **Presence** lives in Redis, changed atomically by one Lua script (`presence.lua`). Every
//!   key shares the `{prefix}` hash tag, so in Redis Cluster they sit in one slot and the
//!   script stays atomic.
//! - **Fan-out** uses pub/sub, and reaches only nodes with recipients: a node subscribes to a
//!   channel's topic (`<prefix>:bc:<channel>`) while it has local members, so a channel
//!   broadcast is published once and Redis hands it to those nodes only; a unicast or uid send
//!   looks up the owning nodes and publishes to each one's topic (`<prefix>:node:<id>`); a send
//!   to everyone goes to `<prefix>:all`. With `sharded`, `SPUBLISH`/`SSUBSCRIBE` spread topics
//!   over the shards of a Redis Cluster.
//! - **Liveness**: each node refreshes `alive:<node>` (TTL `node_ttl`) every third of it; every
//!   node reaps the clients of nodes whose key expired, so a dead node's clients leave presence
//!   within about 1.5 × `node_ttl`. A node starting with a fixed id first reaps its own ghosts.
//! - **Outage**: the client reconnects with backoff; local clients keep being served (local
//!   deliveries never touch Redis); remote deliveries and presence changes made during the outage
//!   are lost (logged); queries fall back to this node's registry. On reconnect the node
//!   re-registers itself and every local client (ids, channels, uids, info) and resubscribes.
//! - **History** (with `--history-size`): one script (`history.lua`) gives a channel message
//!   its offset in each channel, keeps it in the channel's stream and publishes it, atomically,
//!   so every node sees a channel's messages in offset order. The publishing node delivers its
//!   own messages when they come back from Redis, like every other node (that is what keeps
//!   the order the same everywhere). A node recovering a client reads the stream after the
//!   client's offset and merges it with what pub/sub brings (`history.rs`). History topics
//!   carry the `{prefix}` hash tag, so the script's keys and topics share one slot.

mod envelope;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use futures_util::future::BoxFuture;

use crate::cluster::Cluster;
use crate::history::Fetched;
use crate::hub::{Hub, WeakHub};
use crate::presence::{Answer, Delivery, PresenceEvent, Query, Route};
use envelope::Body;

/// How to reach Redis and how to behave as a node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (or a cluster node's address with `clustered`).
    pub url: String,
    /// The URL is a node of a Redis Cluster.
    pub clustered: bool,
    /// Use sharded pub/sub (`SPUBLISH`, Redis 7). Default: on when `clustered`.
    pub sharded: bool,
    /// Key and topic prefix, so several pools can share a Redis. Default `wsp`.
    pub prefix: String,
    /// A node whose liveness key is older than this is dead. Default 10 s.
    pub node_ttl: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clustered: false,
            sharded: false,
            prefix: "wsp".into(),
            node_ttl: Duration::from_secs(10),
        }
    }

    /// Sets [`Self::clustered`] (and [`Self::sharded`] with it).
    pub fn clustered(mut self, yes: bool) -> Self {
        self.clustered = yes;
        self.sharded = yes;
        self
    }

    /// Sets [`Self::sharded`].
    pub fn sharded(mut self, yes: bool) -> Self {
        self.sharded = yes;
        self
    }

    /// Sets [`Self::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`Self::node_ttl`].
    pub fn node_ttl(mut self, ttl: Duration) -> Self {
        self.node_ttl = ttl;
        self
    }
}

/// A pool node backed by Redis. Build with [`RedisCluster::connect`], give it to
/// [`Hub::with_cluster`], then call [`RedisCluster::start`] with that hub.
pub struct RedisCluster {
    cfg: RedisConfig,
    node: String,
    client: Client,
    sub: SubscriberClient,
    script: Script,
    history_script: Script,
    /// History limits when the hub keeps channel history (set in `start`).
    history: OnceLock<Option<crate::history::Limits>>,
    /// Key prefix with the hash tag: `{wsp}`.
    k: String,
    hub: OnceLock<WeakHub>,
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
        let k = format!("{{{}}}", cfg.prefix);
        Ok(Arc::new(Self {
            node: node.into(),
            client,
            sub,
            script: Script::from_lua(include_str!("presence.lua")),
            history_script: Script::from_lua(include_str!("history.lua")),
            history: OnceLock::new(),
            k,
            hub: OnceLock::new(),
            topics: std::sync::Mutex::new(HashSet::new()),
            subscribing: tokio::sync::Mutex::new(()),
            cfg,
        }))
    }

    /// Attaches the hub, registers the node, subscribes, and starts the liveness, janitor,
    /// pub/sub and reconnect tasks.
    pub async fn start(self: &Arc<Self>, hub: &Hub) -> crate::Result<()> {
        let _ = self.hub.set(hub.downgrade());
        let _ = self.history.set(hub.history().map(|h| *h.limits()));
        let reaped = self.op::<u64>(&["reap", &self.node]).await?;
        if reaped > 0 {
            tracing::info!(reaped, node = %self.node, "removed ghosts of this node's previous run");
        }
        self.heartbeat().await?;
        self.sub.manage_subscriptions();
        self.subscribe(&self.node_topic(&self.node)).await?;
        self.subscribe(&self.all_topic()).await?;
        if self.limits().is_some() {
            self.subscribe(&self.history_all_topic()).await?;
        }
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

    fn hub(&self) -> Option<Hub> {
        self.hub.get().and_then(WeakHub::upgrade)
    }

    /// Counts in the hub's metrics, when it has them.
    fn count(&self, f: impl FnOnce(&crate::metrics::Metrics)) {
        if let Some(hub) = self.hub() {
            if let Some(m) = hub.metrics() {
                f(m);
            }
        }
    }

    /// Counts a failed Redis operation and passes the error on.
    fn failed<T>(&self, r: crate::Result<T>) -> crate::Result<T> {
        if r.is_err() {
            self.count(|m| m.redis_error());
        }
        r
    }

    /// Counts a publish: published when it went out, a Redis error when it did not.
    fn published<T>(&self, r: crate::Result<T>) -> crate::Result<T> {
        if r.is_ok() {
            self.count(|m| m.cluster_published());
        }
        self.failed(r)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.k)
    }

    fn node_topic(&self, node: &str) -> String {
        format!("{}:node:{node}", self.cfg.prefix)
    }

    fn all_topic(&self) -> String {
        format!("{}:all", self.cfg.prefix)
    }

    /// With history, where a send to several channels is published, once, by the script.
    fn history_all_topic(&self) -> String {
        format!("{}:hall", self.k)
    }

    fn channel_topic(&self, channel: &str) -> String {
        format!("{}{channel}", self.channel_topic_prefix())
    }

    /// With history, channel topics share the keys' hash tag (the history script publishes).
    fn channel_topic_prefix(&self) -> String {
        if self.limits().is_some() {
            format!("{}:hbc:", self.k)
        } else {
            format!("{}:bc:", self.cfg.prefix)
        }
    }

    fn limits(&self) -> Option<crate::history::Limits> {
        self.history.get().copied().flatten()
    }

    async fn op<R: FromValue>(&self, args: &[&str]) -> crate::Result<R> {
        self.online()?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let r = self
            .script
            .evalsha_with_reload::<R, _, _>(&self.client, vec![self.key("clients")], args)
            .await
            .map_err(cluster_err);
        self.failed(r)
    }

    async fn publish_to(&self, topic: &str, msg: Bytes) -> crate::Result<()> {
        self.online()?;
        let r = if self.cfg.sharded {
            self.client.spublish::<(), _, _>(topic, msg).await
        } else {
            self.client.publish::<(), _, _>(topic, msg).await
        };
        self.published(r.map_err(cluster_err))
    }

    async fn subscribe(&self, topic: &str) -> crate::Result<()> {
        self.online()?;
        let r = if self.cfg.sharded {
            self.sub.ssubscribe(topic).await
        } else {
            self.sub.subscribe(topic).await
        };
        r.map_err(cluster_err)
    }

    async fn unsubscribe(&self, topic: &str) -> crate::Result<()> {
        self.online()?;
        let r = if self.cfg.sharded {
            self.sub.sunsubscribe(topic).await
        } else {
            self.sub.unsubscribe(topic).await
        };
        r.map_err(cluster_err)
    }

    /// Subscribes to a channel's topic once this node has a member there; `Err` when the
    /// subscription could not be made (logged). With `confirm`, subscribes even when the topic
    /// is listed (a no-op for Redis when it is current): a recovery must not trust a listing
    /// that a Redis restart may have made stale.
    async fn follow_channel(&self, channel: &str, confirm: bool) -> crate::Result<()> {
        let topic = self.channel_topic(channel);
        let _serial = self.subscribing.lock().await;
        if self.topics().contains(&topic) && !confirm {
            return Ok(());
        }
        match self.subscribe(&topic).await {
            Ok(()) => {
                self.topics().insert(topic);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, channel, "could not subscribe to the channel's topic");
                Err(e)
            }
        }
    }

    /// Unsubscribes once this node has no member left in the channel.
    async fn unfollow_channel(&self, channel: &str) {
        let Some(hub) = self.hub() else { return };
        let topic = self.channel_topic(channel);
        let _serial = self.subscribing.lock().await;
        if hub.registry().channel_len(channel) == 0 && self.topics().remove(&topic) {
            if let Err(e) = self.unsubscribe(&topic).await {
                tracing::warn!(error = %e, channel, "could not unsubscribe from the channel's topic");
            }
        }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node follows the channel (it is subscribed to its topic).
    fn follows(&self, channel: &str) -> bool {
        self.topics().contains(&self.channel_topic(channel))
    }

    async fn heartbeat(&self) -> crate::Result<()> {
        self.online()?;
        let ttl = self.cfg.node_ttl.as_millis() as i64;
        self.client
            .set::<(), _, _>(
                self.key(&format!("alive:{}", self.node)),
                "1",
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(cluster_err)?;
        self.client
            .sadd::<(), _, _>(self.key("nodes"), self.node.as_str())
            .await
            .map_err(cluster_err)
    }

    /// Refreshes this node's liveness and reaps dead nodes, every third of the TTL.
    async fn liveness(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.node_ttl / 3);
        loop {
            tick.tick().await;
            if self.hub().is_none() {
                return;
            }
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "cannot refresh this node's liveness");
                continue;
            }
            if let Err(e) = self.reap_dead().await {
                tracing::warn!(error = %e, "cannot check other nodes' liveness");
            }
        }
    }

    async fn reap_dead(&self) -> crate::Result<()> {
        let nodes: Vec<String> = self
            .client
            .smembers(self.key("nodes"))
            .await
            .map_err(cluster_err)?;
        for n in nodes.iter().filter(|n| **n != self.node) {
            let alive: u64 = self
                .client
                .exists(self.key(&format!("alive:{n}")))
                .await
                .map_err(cluster_err)?;
            if alive == 0 {
                let reaped: u64 = self.op(&["reap", n]).await?;
                tracing::info!(node = %n, reaped, "removed a dead node and its clients");
            }
        }
        Ok(())
    }

    /// Re-registers this node and every local client (after a Redis restart or failover).
    async fn rebuild(&self) {
        let Some(hub) = self.hub() else { return };
        // The pub/sub connection reconnects on its own schedule: wait for both.
        for _ in 0..100 {
            if self.online().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Err(e) = self.heartbeat().await {
            tracing::warn!(error = %e, "rebuild: cannot register the node");
            return;
        }
        // Subscriptions may not have survived (a restarted Redis knows none): subscribe again
        // to every topic this node follows (subscribing twice is harmless; a topic left during
        // the outage may still be listed, and is dropped when its channel's members leave).
        let mut again: Vec<String> = vec![self.node_topic(&self.node), self.all_topic()];
        if self.limits().is_some() {
            again.push(self.history_all_topic());
        }
        again.extend(self.topics().iter().cloned());
        for topic in again {
            if let Err(e) = self.subscribe(&topic).await {
                tracing::warn!(error = %e, %topic, "rebuild: cannot subscribe");
            }
        }
        let entries = hub.registry().entries();
        let n = entries.len();
        let channels: HashSet<&String> = entries.iter().flat_map(|e| e.2.iter()).collect();
        for ch in channels {
            let _ = self.follow_channel(ch, false).await;
        }
        for (id, uid, channels, info) in entries {
            let mut ok = self.op::<u64>(&["claim", &id, &self.node]).await.is_ok();
            for ch in &channels {
                ok &= self.op::<u64>(&["join", &id, ch]).await.is_ok();
            }
            if let Some(uid) = &uid {
                ok &= self.op::<u64>(&["bind", &id, uid]).await.is_ok();
            }
            if !info.is_empty() {
                ok &= self.set_info(&id, &info).await.is_ok();
            }
            if !ok {
                tracing::warn!(client_id = %id, "rebuild: could not re-register a client");
            }
        }
        tracing::info!(clients = n, "rebuild done");
    }

    async fn set_info(&self, id: &str, info: &BTreeMap<String, String>) -> crate::Result<u64> {
        let mut args: Vec<&str> = vec!["info", id];
        for (k, v) in info {
            args.push(k);
            args.push(v);
        }
        self.op(&args).await
    }

    /// Applies messages from other nodes.
    async fn receive(self: Arc<Self>) {
        let mut rx = self.sub.message_rx();
        loop {
            let msg = match rx.recv().await {
                Ok(m) => m,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(
                        lost = n,
                        "this node fell behind its Redis pub/sub queue: messages lost"
                    );
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(hub) = self.hub() else { return };
            if let Some(m) = hub.metrics() {
                m.cluster_received();
            }
            let Some(bytes) = msg.value.into_bytes() else {
                continue;
            };
            let decoded = match envelope::decode(&bytes) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, topic = %msg.channel, "ignoring a malformed cluster message");
                    continue;
                }
            };
            if let (Some(stamp), Route::Channels(chs), Some(p)) =
                (&decoded.stamp, &decoded.header.route, decoded.publication())
            {
                // A positioned channel message: every node, the sender too, delivers it here.
                hub.deliver_positioned(chs, stamp.index, &stamp.positions, stamp.time, &p, |ch| {
                    self.follows(ch)
                });
                continue;
            }
            let envelope::Decoded {
                header, delivery, ..
            } = decoded;
            if header.origin == self.node && matches!(header.route, Route::Channels(_) | Route::All)
            {
                continue; // delivered locally when sent
            }
            match (header.body, delivery) {
                (Body::Event { event }, _) => {
                    let hub = hub.clone();
                    tokio::spawn(async move { apply_remote_event(&hub, event).await });
                }
                (_, Some(d)) => match (&header.route, header.index) {
                    (Route::Channels(chs), Some(i)) if i < chs.len() => {
                        hub.deliver_channel_except(&chs[i], &chs[..i], &d);
                    }
                    (route, _) => {
                        hub.deliver_local(route, &d);
                    }
                },
                _ => {}
            }
        }
    }

    async fn owners(&self, ids: &[String]) -> crate::Result<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.client
            .hmget(self.key("clients"), ids.to_vec())
            .await
            .map_err(cluster_err)
    }

    /// Publishes a channel message through the history script; the nodes (this one too)
    /// deliver it when it comes back from Redis with its positions.
    async fn publish_history(
        &self,
        channels: &[String],
        delivery: &Delivery,
        limits: crate::history::Limits,
    ) -> crate::Result<()> {
        self.online()?;
        let env = envelope::delivery(
            &self.node,
            Route::Channels(channels.to_vec()),
            None,
            delivery,
        );
        let mut args: Vec<Value> = vec![
            "publish".into(),
            (limits.size as i64).into(),
            (limits.ttl.as_millis() as i64).into(),
            (HISTORY_META_TTL.as_millis() as i64).into(),
            if self.cfg.sharded {
                "SPUBLISH"
            } else {
                "PUBLISH"
            }
            .into(),
            self.channel_topic_prefix().into(),
            self.history_all_topic().into(),
            Value::Bytes(env),
        ];
        args.extend(channels.iter().map(|c| Value::from(c.as_str())));
        let r = self
            .history_script
            .evalsha_with_reload::<Value, _, _>(&self.client, vec![self.key("clients")], args)
            .await
            .map(drop)
            .map_err(cluster_err);
        self.published(r)
    }

    /// Runs a history read (`read` or `last`) and decodes the kept messages of `channel`.
    async fn history_op(&self, channel: &str, args: Vec<Value>) -> crate::Result<Option<Fetched>> {
        self.online()?;
        let r: crate::Result<Vec<Value>> = self
            .history_script
            .evalsha_with_reload(&self.client, vec![self.key("clients")], args)
            .await
            .map_err(cluster_err);
        let r = self.failed(r)?;
        let mut it = r.into_iter();
        let epoch: Option<String> = it.next().and_then(|v| v.convert().ok());
        let top: u64 = it.next().and_then(|v| v.convert().ok()).unwrap_or(0);
        let Some(epoch) = epoch else { return Ok(None) };
        let messages: Vec<Bytes> = it.next().and_then(|v| v.convert().ok()).unwrap_or_default();
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            let d = envelope::decode(&m).map_err(cluster_err)?;
            let (Some(stamp), Some(p)) = (&d.stamp, d.publication()) else {
                continue;
            };
            // Older nodes stored one copy per channel with its index; a shared copy is found by
            // the channel's name.
            let pos = match stamp.index {
                Some(i) => stamp.positions.get(i).filter(|p| p.channel == channel),
                None => stamp.positions.iter().find(|p| p.channel == channel),
            };
            let Some(pos) = pos else {
                continue;
            };
            entries.push((pos.offset, stamp.time, p.frame(&stamp.positions)));
        }
        Ok(Some(Fetched {
            epoch,
            top,
            entries,
        }))
    }

    async fn publish_impl(&self, route: Route, delivery: Delivery) -> crate::Result<usize> {
        let Some(hub) = self.hub() else { return Ok(0) };
        if let (Route::Channels(chs), Delivery::Publication(_), Some(limits)) =
            (&route, &delivery, self.limits())
        {
            if let Err(e) = self.publish_history(chs, &delivery, limits).await {
                // Without Redis there is no offset: local members still get it, unpositioned.
                tracing::warn!(error = %e, "history publish failed: delivered here only, without an offset");
                return Ok(hub.deliver_local(&route, &delivery).queued);
            }
            return self.channel_audience(chs, 0).await;
        }
        let local = hub.deliver_local(&route, &delivery).queued;
        if let Route::Client(_) = route {
            if local > 0 {
                return Ok(local);
            }
        }
        self.online()?;
        match &route {
            Route::Client(id) => {
                let owner: Option<String> = self
                    .client
                    .hget(self.key("clients"), id.as_str())
                    .await
                    .map_err(cluster_err)?;
                match owner {
                    Some(n) if n != self.node => {
                        self.publish_to(
                            &self.node_topic(&n),
                            envelope::delivery(&self.node, route.clone(), None, &delivery),
                        )
                        .await?;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
            Route::Uid(uid) => {
                let ids: Vec<String> = self
                    .client
                    .smembers(self.key(&format!("uid:{uid}")))
                    .await
                    .map_err(cluster_err)?;
                let owners = self.owners(&ids).await?;
                let mut per_node: HashMap<String, usize> = HashMap::new();
                for n in owners.into_iter().flatten().filter(|n| *n != self.node) {
                    *per_node.entry(n).or_default() += 1;
                }
                let msg = envelope::delivery(&self.node, route.clone(), None, &delivery);
                let mut remote = 0;
                for (n, count) in per_node {
                    self.publish_to(&self.node_topic(&n), msg.clone()).await?;
                    remote += count;
                }
                Ok(local + remote)
            }
            Route::Channels(chs) => {
                // One channel: its topic, which reaches only the nodes with members. Several:
                // once, to every node (each delivers to its members of any of them, each
                // once), never one copy per channel.
                let topic = match chs.as_slice() {
                    [one] => self.channel_topic(one),
                    _ => self.all_topic(),
                };
                self.publish_to(
                    &topic,
                    envelope::delivery(&self.node, route.clone(), None, &delivery),
                )
                .await?;
                self.channel_audience(chs, local).await
            }
            Route::All => {
                self.publish_to(
                    &self.all_topic(),
                    envelope::delivery(&self.node, route.clone(), None, &delivery),
                )
                .await?;
                let n: u64 = self
                    .client
                    .hlen(self.key("clients"))
                    .await
                    .map_err(cluster_err)?;
                Ok((n as usize).max(local))
            }
        }
    }

    /// Members of the channels across the cluster, each once (at least `local`).
    async fn channel_audience(&self, chs: &[String], local: usize) -> crate::Result<usize> {
        if chs.len() == 1 {
            let n: u64 = self
                .client
                .scard(self.key(&format!("ch:{}", chs[0])))
                .await
                .map_err(cluster_err)?;
            Ok((n as usize).max(local))
        } else {
            let keys: Vec<String> = chs.iter().map(|c| self.key(&format!("ch:{c}"))).collect();
            let all: Vec<String> = self.client.sunion(keys).await.map_err(cluster_err)?;
            Ok(all.len().max(local))
        }
    }

    async fn record_impl(&self, event: PresenceEvent) -> crate::Result<()> {
        match event {
            PresenceEvent::Connected { .. } => Ok(()), // claimed in `claim_id`
            PresenceEvent::Disconnected { client_id } => {
                let channels: Vec<String> = self.op(&["remove", &client_id]).await?;
                for ch in channels {
                    self.unfollow_channel(&ch).await;
                }
                Ok(())
            }
            PresenceEvent::Joined { client_id, channel } => {
                let _ = self.follow_channel(&channel, false).await;
                self.op::<u64>(&["join", &client_id, &channel])
                    .await
                    .map(drop)
            }
            PresenceEvent::Left { client_id, channel } => {
                self.op::<u64>(&["leave", &client_id, &channel]).await?;
                self.unfollow_channel(&channel).await;
                Ok(())
            }
            PresenceEvent::Bound { client_id, uid } => {
                self.op::<u64>(&["bind", &client_id, &uid]).await.map(drop)
            }
            PresenceEvent::Unbound { client_id, uid } => self
                .op::<u64>(&["unbind", &client_id, &uid])
                .await
                .map(drop),
            PresenceEvent::InfoChanged { client_id, info } => {
                self.set_info(&client_id, &info).await.map(drop)
            }
        }
    }

    async fn query_impl(&self, q: &Query) -> crate::Result<Answer> {
        self.online()?;
        let c = &self.client;
        let sorted = |mut v: Vec<String>| {
            v.sort_unstable();
            v.dedup();
            Answer::Ids(v)
        };
        Ok(match q {
            Query::IsOnline(id) => Answer::Bool(
                c.hexists(self.key("clients"), id.as_str())
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::IsUidOnline(uid) => Answer::Bool(
                c.scard::<u64, _>(self.key(&format!("uid:{uid}")))
                    .await
                    .map_err(cluster_err)?
                    > 0,
            ),
            Query::UidByClientId(id) => Answer::Uid(
                c.hget(self.key("cuid"), id.as_str())
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::ClientIdsByUid(uid) => sorted(
                c.smembers(self.key(&format!("uid:{uid}")))
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::ClientIdsByChannel(ch) => sorted(
                c.smembers(self.key(&format!("ch:{ch}")))
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::UidsByChannel(ch) => sorted(self.op(&["uids_by_channel", ch]).await?),
            Query::ClientCount => Answer::Count(
                c.hlen::<u64, _>(self.key("clients"))
                    .await
                    .map_err(cluster_err)? as usize,
            ),
            Query::ChannelClientCount(ch) => Answer::Count(
                c.scard::<u64, _>(self.key(&format!("ch:{ch}")))
                    .await
                    .map_err(cluster_err)? as usize,
            ),
            Query::ChannelUidCount(ch) => Answer::Count(
                self.op::<Vec<String>>(&["uids_by_channel", ch])
                    .await?
                    .len(),
            ),
            Query::AllUids => sorted(c.smembers(self.key("uids")).await.map_err(cluster_err)?),
            Query::AllChannels => sorted(c.smembers(self.key("chs")).await.map_err(cluster_err)?),
            Query::GetInfo(id) => {
                if c.hexists(self.key("clients"), id.as_str())
                    .await
                    .map_err(cluster_err)?
                {
                    let info: HashMap<String, String> = c
                        .hgetall(self.key(&format!("info:{id}")))
                        .await
                        .map_err(cluster_err)?;
                    Answer::Info(Some(info.into_iter().collect()))
                } else {
                    Answer::Info(None)
                }
            }
        })
    }
}

/// A change sent by another node for one of our clients: apply it through the hub (the client
/// is local here, so the hub takes the local path and records it).
async fn apply_remote_event(hub: &Hub, event: PresenceEvent) {
    let r = match &event {
        PresenceEvent::Joined { client_id, channel } => hub.join(client_id, channel).await,
        PresenceEvent::Left { client_id, channel } => hub.leave(client_id, channel).await,
        PresenceEvent::Bound { client_id, uid } => hub.bind_uid(client_id, uid).await,
        PresenceEvent::Unbound { client_id, uid } => hub.unbind_uid(client_id, uid).await,
        PresenceEvent::InfoChanged { client_id, info } => {
            hub.update_info(client_id, info.clone()).await
        }
        _ => Ok(false),
    };
    if let Err(e) = r {
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
            let owner: Option<String> = self
                .client
                .hget(self.key("clients"), id.as_str())
                .await
                .map_err(cluster_err)?;
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
                    let Some(hub) = self.hub() else { return Err(e) };
                    tracing::warn!(error = %e, "presence query answered from this node only");
                    Ok(hub.registry().answer(&query))
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
                channel.as_str().into(),
                after.map(|a| a.to_string()).unwrap_or_default().into(),
                (limits.size as i64).into(),
                (limits.ttl.as_millis() as i64).into(),
                (HISTORY_META_TTL.as_millis() as i64).into(),
            ];
            self.history_op(&channel, args).await
        })
    }

    fn history_last(
        &self,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'_, crate::Result<Option<Option<(String, u64, Vec<crate::history::Entry>)>>>>
    {
        let channel = channel.to_string();
        Box::pin(async move {
            let Some(limits) = self.limits() else {
                return Ok(None);
            };
            let args: Vec<Value> = vec![
                "last".into(),
                channel.as_str().into(),
                (limit as i64).into(),
                (limits.ttl.as_millis() as i64).into(),
            ];
            let fetched = self.history_op(&channel, args).await?;
            Ok(Some(fetched.map(|f| {
                let entries = f
                    .entries
                    .into_iter()
                    .map(|(offset, time_ms, frame)| {
                        crate::history::Entry::new(offset, time_ms, frame)
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
    ) -> BoxFuture<'_, crate::Result<Option<crate::cluster::Footprint>>> {
        let (id, ch) = (client_id.to_string(), channel.unwrap_or("").to_string());
        Box::pin(async move {
            let v: Value = self.op(&["footprint", &id, &ch]).await?;
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
            Ok(Some(crate::cluster::Footprint {
                channels: channels as usize,
                member: member == 1,
                info,
            }))
        })
    }

    fn claim_id(&self, client_id: &str) -> BoxFuture<'_, crate::Result<bool>> {
        let id = client_id.to_string();
        Box::pin(async move {
            match self.op::<u64>(&["claim", &id, &self.node]).await {
                Ok(n) => Ok(n == 1),
                Err(e) => {
                    // Keep accepting connections during an outage; the rebuild claims them later.
                    tracing::warn!(error = %e, client_id = %id, "id not reserved cluster-wide (redis unavailable)");
                    Ok(true)
                }
            }
        })
    }
}
