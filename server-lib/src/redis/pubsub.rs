//! Publishing, subscriptions (a node follows a channel's topic while it has local members) and
//! the loop that applies what other nodes send.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use fred::prelude::*;

use super::envelope::{self, Body};
use super::keys::NodeSet;
use super::{apply_remote_event, cluster_err, RedisCluster};
use crate::pool::cluster::ClusterEvent;
use crate::pool::presence::Route;

impl RedisCluster {
    pub(super) async fn publish_to(&self, topic: &str, msg: Bytes) -> crate::Result<()> {
        self.online()?;
        let r = if self.cfg.sharded {
            self.client.spublish::<(), _, _>(topic, msg).await
        } else {
            self.client.publish::<(), _, _>(topic, msg).await
        };
        self.published(r.map_err(cluster_err))
    }

    pub(super) async fn subscribe(&self, topic: &str) -> crate::Result<()> {
        self.online()?;
        let r = if self.cfg.sharded {
            self.sub.ssubscribe(topic).await
        } else {
            self.sub.subscribe(topic).await
        };
        r.map_err(cluster_err)
    }

    pub(super) async fn unsubscribe(&self, topic: &str) -> crate::Result<()> {
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
    pub(super) async fn follow_channel(&self, channel: &str, confirm: bool) -> crate::Result<()> {
        let topic = self.channel_topic(channel);
        let _serial = self.subscribing.lock().await;
        if self.topics().contains(&topic) && !confirm {
            return Ok(());
        }
        match self.subscribe(&topic).await {
            Ok(()) => {
                if self.topics().insert(topic) {
                    // The pool's channel list is the union of the nodes' (no global set).
                    self.sadd(
                        self.node_set(&self.node, NodeSet::Channels, channel),
                        channel,
                    )
                    .await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, channel, "could not subscribe to the channel's topic");
                Err(e)
            }
        }
    }

    /// Unsubscribes once this node has no member left in the channel.
    pub(super) async fn unfollow_channel(&self, channel: &str) {
        let Some(pool) = self.pool() else { return };
        let topic = self.channel_topic(channel);
        let _serial = self.subscribing.lock().await;
        if pool.channel_len(channel) == 0 && self.topics().remove(&topic) {
            if let Err(e) = self.unsubscribe(&topic).await {
                tracing::warn!(error = %e, channel, "could not unsubscribe from the channel's topic");
            }
            let key = self.node_set(&self.node, NodeSet::Channels, channel);
            if let Err(e) = self.srem(key, channel).await {
                tracing::warn!(error = %e, channel, "could not drop the channel from this node's list");
            }
        }
    }

    pub(super) fn topics(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node follows the channel (it is subscribed to its topic).
    pub(super) fn follows(&self, channel: &str) -> bool {
        self.topics().contains(&self.channel_topic(channel))
    }

    /// Applies messages from other nodes.
    pub(super) async fn receive(self: Arc<Self>) {
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
            let Some(pool) = self.pool() else { return };
            pool.count(ClusterEvent::Received);
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
                pool.deliver_positioned(
                    chs,
                    stamp.index,
                    &stamp.positions,
                    stamp.time,
                    &p,
                    &|ch| self.follows(ch),
                );
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
                    if let Some(pool) = self.pool.get().cloned() {
                        tokio::spawn(async move { apply_remote_event(&*pool, event).await });
                    }
                }
                (_, Some(d)) => match (&header.route, header.index) {
                    (Route::Channels(chs), Some(i)) if i < chs.len() => {
                        pool.deliver_channel_except(&chs[i], &chs[..i], &d);
                    }
                    (route, _) => {
                        pool.deliver_local(route, &d);
                    }
                },
                _ => {}
            }
        }
    }
}
