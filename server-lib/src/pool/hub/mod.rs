//! The hub: the pool's public API (GatewayWorker / bin-x `Api`, wsPool's sends, the gin hub's
//! online count), over the local registry or a cluster. `queries`: the presence queries;
//! `local`: the hub as a cluster backend sees it.

mod local;
mod queries;

use std::sync::{Arc, Weak};

use crate::base::auth::Grant;
use crate::base::config::ServerConfig;
use crate::base::limits::{cause, Refusals};
use crate::base::metrics::Metrics;
use crate::pool::client::ClientHandle;
use crate::pool::cluster::{Cluster, Footprint, Local};
use crate::pool::flush::Flush;
use crate::pool::history::{Entry, History, Limits, Recovery};
use crate::pool::presence::{info_bytes, merged, Answer, Delivery, Info, PresenceEvent, Route};
use crate::pool::registry::{Delivered, Joined, Registry};
use crate::transport::close::Close;
use crate::transport::deflate::{Deflate, Params};
use crate::transport::frame::Frame;
use crate::wire::publication::{Position, Publication, Since};
use crate::{Error, Result};

/// The pool: every connected client, and every way to reach or ask about them.
///
/// Cheap to clone; all clones are the same pool. Every method is `async` because, in cluster
/// mode, it may ask other nodes; on a single node each completes without waiting.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A hub reference that does not keep the hub alive (held by a cluster backend, which the hub
/// itself holds).
#[derive(Clone)]
pub struct WeakHub(Weak<Inner>);

impl WeakHub {
    /// The hub, if it still exists.
    pub fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
}

struct Inner {
    registry: Registry,
    cluster: Option<Arc<dyn Cluster>>,
    config: Arc<ServerConfig>,
    /// The grant every connection shares on a server without authentication.
    open: Arc<Grant>,
    refusals: Refusals,
    /// `None` when metrics are off (`ServerConfig::metrics`).
    metrics: Option<Arc<Metrics>>,
    started: std::time::Instant,
    /// Channel history (`ServerConfig::history_size` > 0): the history itself on a single
    /// node, the cache of the followed channels in cluster mode.
    history: Option<History>,
}

impl Hub {
    /// A single-node hub.
    pub fn new(config: ServerConfig) -> Self {
        Self::build(config, None)
    }

    /// A hub that is one node of a cluster.
    pub fn with_cluster(config: ServerConfig, cluster: Arc<dyn Cluster>) -> Self {
        Self::build(config, Some(cluster))
    }

    fn build(config: ServerConfig, cluster: Option<Arc<dyn Cluster>>) -> Self {
        let metrics = config
            .metrics
            .then(|| Metrics::for_node(&config.server_id))
            .flatten()
            .map(Arc::new);
        // How a connection with the common deflate settings is sent a broadcast by the
        // fan-out's flush: compressed once for all of them.
        let shared = config.compression.then(|| {
            Deflate::server(
                Params::default(),
                config.compression_level,
                config.compression_min_size,
            )
        });
        Self {
            inner: Arc::new(Inner {
                registry: Registry::new(Flush::new(shared, metrics.clone())),
                cluster,
                open: Arc::new(Grant::open()),
                refusals: Refusals::default(),
                metrics,
                history: (config.history_size > 0).then(|| {
                    History::new(Limits {
                        size: config.history_size,
                        ttl: config.history_ttl,
                        max_channels: config.history_max_channels,
                        max_bytes: config.history_max_bytes,
                    })
                }),
                started: std::time::Instant::now(),
                config: Arc::new(config),
            }),
        }
    }

    /// A reference that does not keep the hub alive.
    pub fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.inner))
    }

    /// This hub as a cluster backend sees it ([`Local`]), without keeping it alive: what
    /// `RedisCluster::start` takes.
    pub fn local(&self) -> Arc<dyn Local> {
        Arc::new(self.downgrade())
    }

    /// The configuration this hub was built with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The cluster backend's name and whether it is reachable, in cluster mode.
    pub fn cluster_status(&self) -> Option<(&'static str, bool)> {
        self.inner.cluster.as_ref().map(|c| c.status())
    }

    /// The local registry (clients of this node only).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Clients connected to this node (the gin hub's `GetOnlineClients`).
    pub fn online_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Frames dropped so far for the clients of this node still connected (slow readers).
    pub fn dropped_frames(&self) -> u64 {
        self.inner
            .registry
            .handles()
            .iter()
            .map(|h| h.dropped())
            .sum()
    }

    /// Registers a new connection, with the id it asked for or a fresh unique one.
    pub async fn register(&self, requested: Option<String>) -> Result<ClientHandle> {
        self.register_granted(requested, self.inner.open.clone())
            .await
    }

    /// The grant shared by every connection of a server without authentication.
    pub(crate) fn open_grant(&self) -> Arc<Grant> {
        self.inner.open.clone()
    }

    /// The node's metrics, unless they are off.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_deref()
    }

    /// The channels' history on this node, when history is on.
    pub fn history(&self) -> Option<&History> {
        self.inner.history.as_ref()
    }

    /// Time since this hub was built.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    /// Every refusal of the server's limits and rights so far, counted by cause.
    pub fn refusals(&self) -> &Refusals {
        &self.inner.refusals
    }

    /// Registers a connection with what it is allowed (from its token). Without a requested
    /// id it gets a fresh one that nobody can guess: the server id and 128 random bits
    /// ([`generate_id`]), so no client can take the id the next client will be given.
    pub(crate) async fn register_granted(
        &self,
        requested: Option<String>,
        grant: Arc<Grant>,
    ) -> Result<ClientHandle> {
        let cfg = &self.inner.config;
        let generated = requested.is_none();
        // A generated id never collides (2^-128); the retry only keeps that promise absolute.
        let mut attempts = 0;
        let id: Arc<str> = loop {
            attempts += 1;
            let id: Arc<str> = match &requested {
                Some(id) => id.as_str().into(),
                None => generate_id(&cfg.server_id).into(),
            };
            let claimed = match &self.inner.cluster {
                Some(cluster) => cluster.claim_id(&id).await?,
                None => !self.inner.registry.contains(&id),
            };
            if claimed {
                break id;
            }
            if !generated || attempts >= 3 {
                return Err(Error::DuplicateId(id.to_string()));
            }
        };
        let handle = ClientHandle::new(id.clone(), cfg.outbound_queue, cfg.slow_policy, grant);
        if !self.inner.registry.insert(handle.clone()) {
            return Err(Error::DuplicateId(id.to_string()));
        }
        self.record(PresenceEvent::Connected {
            client_id: id.to_string(),
        })
        .await;
        Ok(handle)
    }

    /// Removes a connection from the pool (its uid binding, channels and info go with it).
    pub async fn unregister(&self, client_id: &str) {
        self.inner.registry.remove(client_id);
        self.record(PresenceEvent::Disconnected {
            client_id: client_id.to_string(),
        })
        .await;
    }

    async fn record(&self, event: PresenceEvent) {
        if let Some(cluster) = &self.inner.cluster {
            if let Err(e) = cluster.record(event).await {
                tracing::warn!(error = %e, "cluster presence update failed");
            }
        }
    }

    /// Applies a change to a local client, or forwards it to the node that has the client.
    async fn change(&self, local: bool, event: PresenceEvent) -> Result<bool> {
        if local {
            self.record(event).await;
            return Ok(true);
        }
        match &self.inner.cluster {
            Some(cluster) => cluster.forward(event).await,
            None => Ok(false),
        }
    }

    // ---- sending ----------------------------------------------------------------------------

    /// Delivers along a route; returns the number of recipients reached (on this node, in
    /// cluster mode).
    pub async fn deliver(&self, route: Route, delivery: Delivery) -> Result<usize> {
        match &self.inner.cluster {
            Some(cluster) => cluster.publish(route, delivery).await,
            None => Ok(self.deliver_local(&route, &delivery).queued),
        }
    }

    /// Delivers to the matching clients of this node only (what a cluster backend calls when a
    /// delivery arrives from another node).
    pub fn deliver_local(&self, route: &Route, delivery: &Delivery) -> Delivered {
        let registry = &self.inner.registry;
        let Delivery::Publication(p) = delivery else {
            return self.counted(registry.deliver(route, delivery));
        };
        match (route, &self.inner.history, &self.inner.cluster) {
            // A single node with history: the history gives the positions.
            (Route::Channels(chs), Some(h), None) => {
                let (_, d) = h.publish(chs, p, |frame| {
                    registry.deliver(route, &Delivery::Frame(frame))
                });
                self.counted(d)
            }
            _ => self.counted(registry.deliver(route, &Delivery::Frame(p.frame(&[])))),
        }
    }

    /// Cluster mode with history: delivers a channel message whose positions the backend
    /// assigned. `index` `Some(i)`: it is the copy of channel `i` of a multi-channel send (the
    /// form of nodes before 0.2, one copy per channel); `None`: it is the whole send, published
    /// once. For each channel this node `follows`, the message is kept in the node's cache of
    /// the channel and delivered to the local members that are in no later channel of the
    /// send (copy `index` of a multi-channel send), unless this node has it already, so each member gets it once.
    pub fn deliver_positioned(
        &self,
        channels: &[String],
        index: Option<usize>,
        positions: &[Position],
        time_ms: i64,
        p: &Publication,
        follows: &dyn Fn(&str) -> bool,
    ) {
        let frame = p.frame(positions);
        let which = match index {
            Some(i) => i..i + 1,
            None => 0..channels.len(),
        };
        for i in which {
            let (Some(channel), Some(position)) = (channels.get(i), positions.get(i)) else {
                return;
            };
            if index.is_none() && channels.len() > 1 && !follows(channel) {
                continue;
            }
            // Copy `i` of a multi-channel send carries the positions of channels 0..=i: a
            // member gets the copy of the last of the send's channels it is in.
            let later = if index.is_some() {
                &channels[i + 1..]
            } else {
                &channels[..i]
            };
            let deliver = |f: &Frame| {
                let d = Delivery::Frame(f.clone());
                self.deliver_channel_except(channel, later, &d);
            };
            match &self.inner.history {
                Some(h) => {
                    h.apply(position, time_ms, frame.clone(), deliver);
                }
                None => deliver(&frame),
            }
        }
    }

    /// Delivers to the local members of `channel` that are in none of `except` (a cluster
    /// node receives a multi-channel send once per channel and must reach each member once).
    pub fn deliver_channel_except(
        &self,
        channel: &str,
        except: &[String],
        delivery: &Delivery,
    ) -> Delivered {
        self.counted(
            self.inner
                .registry
                .deliver_channel_except(channel, except, delivery),
        )
    }

    fn counted(&self, d: Delivered) -> Delivered {
        if let Some(m) = &self.inner.metrics {
            m.delivered(d.queued, d.dropped);
        }
        d
    }

    /// Sends a frame to one client; `false` when it is not online.
    pub async fn send_to_client(&self, client_id: &str, frame: Frame) -> Result<bool> {
        let n = self
            .deliver(Route::Client(client_id.into()), Delivery::Frame(frame))
            .await?;
        Ok(n > 0)
    }

    /// Sends a frame to every client bound to `uid`.
    pub async fn send_to_uid(&self, uid: &str, frame: Frame) -> Result<usize> {
        self.deliver(Route::Uid(uid.into()), Delivery::Frame(frame))
            .await
    }

    /// Sends a frame to every member of the channels, each member once (wsPool `Broadcast`,
    /// GatewayWorker `sendToGroup`).
    pub async fn send_to_channels(&self, channels: &[String], frame: Frame) -> Result<usize> {
        self.publish(channels, Publication::Frame(frame)).await
    }

    /// Sends a message to every member of the channels, each member once; with history on it
    /// gets an offset in each channel first (see [`Publication`]).
    pub async fn publish(&self, channels: &[String], p: Publication) -> Result<usize> {
        self.deliver(
            Route::Channels(channels.to_vec()),
            Delivery::Publication(Arc::new(p)),
        )
        .await
    }

    /// Sends a frame to every client (wsPool `BroadcastAll`, GatewayWorker `sendToAll`).
    pub async fn send_to_all(&self, frame: Frame) -> Result<usize> {
        self.deliver(Route::All, Delivery::Frame(frame)).await
    }

    /// Closes a client with a close frame; `false` when it is not online.
    pub async fn close_client(&self, client_id: &str, close: Close) -> Result<bool> {
        let n = self
            .deliver(Route::Client(client_id.into()), Delivery::Close(close))
            .await?;
        Ok(n > 0)
    }

    /// Closes every client of this node (used at shutdown).
    pub fn close_local(&self, close: Close) {
        for h in self.inner.registry.handles() {
            h.close(close.clone());
        }
    }

    // ---- membership -------------------------------------------------------------------------

    /// Adds a client to a channel; `false` when the client is not online. The client's channel
    /// limit (`max_channels_per_client`) holds whoever asks: checked here for a client of this
    /// node, and for a client of another node both here (from the cluster's view) and on its
    /// node when the change arrives ([`Error::LimitReached`]).
    pub async fn join(&self, client_id: &str, channel: &str) -> Result<bool> {
        let max = self.inner.config.max_channels_per_client;
        let local = match self.inner.registry.join_limited(client_id, channel, max) {
            Joined::Added | Joined::Already => true,
            Joined::Full => return Err(self.channels_full(client_id)),
            Joined::Absent => false,
        };
        if !local {
            if let Some(f) = self.remote_footprint(client_id, Some(channel)).await? {
                if !f.member && f.channels >= max {
                    return Err(self.channels_full(client_id));
                }
            }
        }
        let event = PresenceEvent::Joined {
            client_id: client_id.into(),
            channel: channel.into(),
        };
        self.change(local, event).await
    }

    fn channels_full(&self, client_id: &str) -> Error {
        let msg = format!(
            "a client may be in at most {} channels (--max-channels-per-client)",
            self.inner.config.max_channels_per_client
        );
        self.inner
            .refusals
            .note(cause::CHANNELS, &format!("{client_id}: {msg}"));
        Error::LimitReached(msg)
    }

    fn info_too_large(&self, client_id: &str, bytes: usize) -> Error {
        let msg = format!(
            "info would hold {bytes} bytes; the limit is {} (--max-info-bytes)",
            self.inner.config.max_info_bytes
        );
        self.inner
            .refusals
            .note(cause::INVALID, &format!("{client_id}: {msg}"));
        Error::TooLarge(msg)
    }

    /// What a client of another node holds, from the cluster's view (`None`: single node, or
    /// the backend cannot tell).
    async fn remote_footprint(
        &self,
        client_id: &str,
        channel: Option<&str>,
    ) -> Result<Option<Footprint>> {
        match &self.inner.cluster {
            Some(c) => c.footprint(client_id, channel).await,
            None => Ok(None),
        }
    }

    /// Adds a local client to a channel through the history, when history is on: with the
    /// channel's stream locked, the client joins, `reply` builds the frame it is sent first,
    /// and then what it missed since `since` follows, before any live message. `Ok(None)`:
    /// history is off (join the usual way).
    pub(crate) async fn join_recovering(
        &self,
        client: &ClientHandle,
        channel: &str,
        since: Option<&Since>,
        reply: impl FnOnce(&Recovery) -> Frame,
    ) -> Result<Option<Recovery>> {
        let Some(h) = &self.inner.history else {
            return Ok(None);
        };
        let max = self.inner.config.max_channels_per_client;
        if let Some((joined, _)) = self.inner.registry.footprint(client.id()) {
            if joined >= max
                && !self
                    .inner
                    .registry
                    .in_any(client.id(), &[channel.to_string()])
            {
                return Err(self.channels_full(client.id()));
            }
        }
        let fetched = match &self.inner.cluster {
            Some(c) => c.history_fetch(channel, since.map(|s| s.offset)).await?,
            None => None,
        };
        let registry = &self.inner.registry;
        let recovery = h.join(channel, since, fetched, |r, mut missed| {
            let mut r = r.clone();
            if registry.in_any(client.id(), &[channel.to_string()]) && r.recovered.is_some() {
                // Already a member: it got everything since it joined, and cannot be sent
                // again what it may already have.
                r.recovered = Some(false);
                r.missed = 0;
                missed.clear();
            }
            registry.join(client.id(), channel);
            client.send(reply(&r));
            for f in missed {
                client.send(f);
            }
            r
        });
        self.record(PresenceEvent::Joined {
            client_id: client.id().into(),
            channel: channel.into(),
        })
        .await;
        Ok(Some(recovery))
    }

    /// The newest `limit` messages of a channel's history, oldest first, with its epoch and
    /// newest offset; for the whole cluster in cluster mode. `Ok(None)`: the channel has no
    /// history (or history is off).
    pub async fn history_last(
        &self,
        channel: &str,
        limit: usize,
    ) -> Result<Option<(String, u64, Vec<Entry>)>> {
        let Some(h) = &self.inner.history else {
            return Ok(None);
        };
        if let Some(c) = &self.inner.cluster {
            if let Some(answer) = c.history_last(channel, limit).await? {
                return Ok(answer);
            }
        }
        Ok(h.last(channel, limit))
    }

    /// Removes a client from a channel; `false` when it was not a member.
    pub async fn leave(&self, client_id: &str, channel: &str) -> Result<bool> {
        let local = self.inner.registry.leave(client_id, channel);
        let event = PresenceEvent::Left {
            client_id: client_id.into(),
            channel: channel.into(),
        };
        self.change(local, event).await
    }

    /// Binds a client to a uid (a client has at most one uid; many clients may share one).
    pub async fn bind_uid(&self, client_id: &str, uid: &str) -> Result<bool> {
        let local = match self.inner.registry.bind_uid(client_id, uid) {
            Ok(Some(previous)) if previous != uid => {
                self.record(PresenceEvent::Unbound {
                    client_id: client_id.into(),
                    uid: previous,
                })
                .await;
                true
            }
            Ok(_) => true,
            Err(()) => false,
        };
        let event = PresenceEvent::Bound {
            client_id: client_id.into(),
            uid: uid.into(),
        };
        self.change(local, event).await
    }

    /// Removes a client's binding to `uid`; `false` when it was not bound to it.
    pub async fn unbind_uid(&self, client_id: &str, uid: &str) -> Result<bool> {
        let local = self.inner.registry.unbind_uid(client_id, uid);
        let event = PresenceEvent::Unbound {
            client_id: client_id.into(),
            uid: uid.into(),
        };
        self.change(local, event).await
    }

    /// Replaces a client's info; `false` when it is not online.
    pub async fn set_info(&self, client_id: &str, info: Info) -> Result<bool> {
        self.put_info(client_id, info, false).await
    }

    /// Merges keys into a client's info; `false` when it is not online.
    pub async fn update_info(&self, client_id: &str, info: Info) -> Result<bool> {
        self.put_info(client_id, info, true).await
    }

    async fn put_info(&self, client_id: &str, info: Info, merge: bool) -> Result<bool> {
        let max = self.inner.config.max_info_bytes;
        let (local, info) = match self
            .inner
            .registry
            .set_info(client_id, info.clone(), merge, max)
        {
            Ok(Some(all)) => (true, all),
            Err(bytes) => return Err(self.info_too_large(client_id, bytes)),
            // A remote node merges into its own copy; we forward the part we have.
            Ok(None) => (false, info),
        };
        if !local {
            if let Some(f) = self.remote_footprint(client_id, None).await? {
                let bytes = info_bytes(&merged(&f.info, &info, merge));
                if bytes > max {
                    return Err(self.info_too_large(client_id, bytes));
                }
            }
        }
        let event = PresenceEvent::InfoChanged {
            client_id: client_id.into(),
            info,
        };
        self.change(local, event).await
    }

    /// Frees the history's expired messages (the server runs it every second); the bytes
    /// freed.
    pub fn sweep_history(&self) -> usize {
        self.inner.history.as_ref().map_or(0, History::sweep)
    }
}

/// A fresh client id: `<server_id>-` and 128 bits from the thread's CSPRNG (ChaCha, seeded
/// from the OS), in hex. Unguessable, so no client can connect as the next one first.
pub fn generate_id(server_id: &str) -> String {
    format!("{server_id}-{:032x}", rand::random::<u128>())
}

fn unexpected(answer: Answer) -> Error {
    Error::Cluster(format!(
        "backend answered a query with the wrong shape: {answer:?}"
    ))
}
