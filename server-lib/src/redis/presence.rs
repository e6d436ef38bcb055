//! Presence in Redis: changes (one script), queries, and routing a delivery to the nodes
//! that have its recipients.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;

use super::envelope;
use super::keys::NodeSet;
use super::{cluster_err, RedisCluster};
use crate::pool::presence::{Answer, Delivery, PresenceEvent, Query, Route};

impl RedisCluster {
    pub(super) async fn set_info(
        &self,
        id: &str,
        info: &BTreeMap<String, String>,
    ) -> crate::Result<u64> {
        let mut args: Vec<&str> = vec!["info"];
        for (k, v) in info {
            args.push(k);
            args.push(v);
        }
        self.client_op(id, &args).await
    }

    /// The node that owns a client, if it is online.
    pub(super) async fn owner(&self, id: &str) -> crate::Result<Option<String>> {
        self.client
            .hget(self.client_key(id), "node")
            .await
            .map_err(cluster_err)
    }

    /// The owners of several clients (one command per client, in flight together: their keys
    /// sit in different slots).
    pub(super) async fn owners(&self, ids: &[String]) -> crate::Result<Vec<Option<String>>> {
        futures_util::future::try_join_all(ids.iter().map(|id| self.owner(id))).await
    }

    /// Each member of a set, for several sets in different slots, as one sorted list.
    async fn union(&self, keys: Vec<String>) -> crate::Result<Vec<String>> {
        let sets: Vec<Vec<String>> = futures_util::future::try_join_all(
            keys.into_iter()
                .map(|k| self.client.smembers::<Vec<String>, _>(k)),
        )
        .await
        .map_err(cluster_err)?;
        let mut all: Vec<String> = sets.into_iter().flatten().collect();
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Every registered node's buckets of `kind`.
    async fn every_node(&self, kind: NodeSet) -> crate::Result<Vec<String>> {
        let nodes: Vec<String> = self
            .client
            .smembers(self.nodes_key())
            .await
            .map_err(cluster_err)?;
        Ok(nodes.iter().flat_map(|n| self.node_sets(n, kind)).collect())
    }

    /// How many clients are online in the whole pool: the sum of every node's client sets.
    pub(super) async fn client_count(&self) -> crate::Result<usize> {
        let keys = self.every_node(NodeSet::Clients).await?;
        let counts: Vec<u64> =
            futures_util::future::try_join_all(keys.into_iter().map(|k| self.client.scard(k)))
                .await
                .map_err(cluster_err)?;
        Ok(counts.iter().sum::<u64>() as usize)
    }

    /// The uids of a channel's members.
    async fn uids_by_channel(&self, ch: &str) -> crate::Result<Vec<String>> {
        let ids: Vec<String> = self
            .client
            .smembers(self.channel_key(ch))
            .await
            .map_err(cluster_err)?;
        let uids: Vec<Option<String>> = futures_util::future::try_join_all(ids.iter().map(|id| {
            self.client
                .hget::<Option<String>, _, _>(self.client_key(id), "uid")
        }))
        .await
        .map_err(cluster_err)?;
        let mut uids: Vec<String> = uids.into_iter().flatten().collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Claims an id for this node: its node-set entry first (so a reaper finds it whatever
    /// happens next), then the client's hash. A holder that is dead is reaped from this id
    /// first. `false` when a live node holds it.
    pub(super) async fn claim(&self, id: &str) -> crate::Result<bool> {
        self.sadd(self.node_set(&self.node, NodeSet::Clients, id), id)
            .await?;
        for _ in 0..2 {
            let owner: String = self.client_op(id, &["claim", &self.node]).await?;
            if owner.is_empty() {
                return Ok(true);
            }
            let alive: u64 = self
                .client
                .exists(self.alive_key(&owner))
                .await
                .map_err(cluster_err)?;
            if alive == 1 {
                self.srem(self.node_set(&self.node, NodeSet::Clients, id), id)
                    .await?;
                return Ok(false);
            }
            self.remove_client(id, &owner).await?; // a ghost of a dead node
        }
        Ok(false)
    }

    /// Removes a client's keys (only if `node` still owns it, when given), then its entries in
    /// its channels' and uid's sets, then in the node's set; returns its uid and channels,
    /// `None` when there was nothing to remove (gone already, or owned by another node).
    pub(super) async fn remove_client(
        &self,
        id: &str,
        node: &str,
    ) -> crate::Result<Option<(Option<String>, Vec<String>)>> {
        let removed: Option<Vec<String>> = self.client_op(id, &["remove", node]).await?;
        let Some(removed) = removed else {
            return Ok(None);
        };
        let mut it = removed.into_iter();
        let uid = it.next().unwrap_or_default();
        let channels: Vec<String> = it.collect();
        let mut steps = Vec::with_capacity(channels.len() + 2);
        for ch in &channels {
            steps.push(self.srem(self.channel_key(ch), id));
        }
        if !uid.is_empty() {
            steps.push(self.srem(self.uid_key(&uid), id));
        }
        if !node.is_empty() {
            steps.push(self.srem(self.node_set(node, NodeSet::Clients, id), id));
        }
        futures_util::future::try_join_all(steps).await?;
        Ok(Some(((!uid.is_empty()).then_some(uid), channels)))
    }

    pub(super) async fn sadd(&self, key: String, member: &str) -> crate::Result<()> {
        self.client
            .sadd::<(), _, _>(key, member)
            .await
            .map_err(cluster_err)
    }

    pub(super) async fn srem(&self, key: String, member: &str) -> crate::Result<()> {
        self.client
            .srem::<(), _, _>(key, member)
            .await
            .map_err(cluster_err)
    }

    /// Joins in Redis: the client's channel list (where its limits are counted), then the
    /// channel's members.
    pub(super) async fn join_channel(&self, id: &str, ch: &str) -> crate::Result<()> {
        if self.client_op::<u64>(id, &["join", ch]).await? == 1 {
            self.sadd(self.channel_key(ch), id).await?;
        }
        Ok(())
    }

    /// Binds in Redis: the client's hash, then the uid's clients (and the old uid's), then
    /// this node's uid set.
    pub(super) async fn bind(&self, id: &str, uid: &str) -> crate::Result<()> {
        let old: Option<String> = self.client_op(id, &["bind", uid]).await?;
        let Some(old) = old else { return Ok(()) };
        if !old.is_empty() && old != uid {
            self.srem(self.uid_key(&old), id).await?;
            self.uid_gone_here(&old).await?;
        }
        self.sadd(self.uid_key(uid), id).await?;
        self.sadd(self.node_set(&self.node, NodeSet::Uids, uid), uid)
            .await
    }

    /// Drops `uid` from this node's uid set once no local client has it.
    async fn uid_gone_here(&self, uid: &str) -> crate::Result<()> {
        let here = self
            .pool()
            .map(|p| {
                matches!(
                    p.answer(&Query::IsUidOnline(uid.into())),
                    Answer::Bool(true)
                )
            })
            .unwrap_or(false);
        if !here {
            self.srem(self.node_set(&self.node, NodeSet::Uids, uid), uid)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn publish_impl(
        &self,
        route: Route,
        delivery: Delivery,
    ) -> crate::Result<usize> {
        let Some(pool) = self.pool() else {
            return Ok(0);
        };
        if let (Route::Channels(chs), Delivery::Publication(_), Some(limits)) =
            (&route, &delivery, self.limits())
        {
            if let Err(e) = self.publish_history(chs, &delivery, limits).await {
                // Without Redis there is no offset: local members still get it, unpositioned.
                tracing::warn!(error = %e, "history publish failed: delivered here only, without an offset");
                return Ok(pool.deliver_local(&route, &delivery).queued);
            }
            return self.channel_audience(chs, 0).await;
        }
        let local = pool.deliver_local(&route, &delivery).queued;
        if let Route::Client(_) = route {
            if local > 0 {
                return Ok(local);
            }
        }
        self.online()?;
        match &route {
            Route::Client(id) => match self.owner(id).await? {
                Some(n) if n != self.node => {
                    self.publish_to(
                        &self.node_topic(&n),
                        envelope::delivery(&self.node, route.clone(), None, &delivery),
                    )
                    .await?;
                    Ok(1)
                }
                _ => Ok(0),
            },
            Route::Uid(uid) => {
                let ids: Vec<String> = self
                    .client
                    .smembers(self.uid_key(uid))
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
                Ok(self.client_count().await?.max(local))
            }
        }
    }

    /// Members of the channels across the cluster, each once (at least `local`).
    pub(super) async fn channel_audience(
        &self,
        chs: &[String],
        local: usize,
    ) -> crate::Result<usize> {
        if chs.len() == 1 {
            let n: u64 = self
                .client
                .scard(self.channel_key(&chs[0]))
                .await
                .map_err(cluster_err)?;
            Ok((n as usize).max(local))
        } else {
            // The channels' sets sit in different slots: no SUNION; their members, once each.
            let keys: Vec<String> = chs.iter().map(|c| self.channel_key(c)).collect();
            Ok(self.union(keys).await?.len().max(local))
        }
    }

    pub(super) async fn record_impl(&self, event: PresenceEvent) -> crate::Result<()> {
        self.online()?;
        let r = match event {
            PresenceEvent::Connected { .. } => Ok(()), // claimed in `claim_id`
            PresenceEvent::Disconnected { client_id } => {
                let (uid, channels) = self
                    .remove_client(&client_id, &self.node)
                    .await?
                    .unwrap_or_default();
                for ch in channels {
                    self.unfollow_channel(&ch).await;
                }
                match uid {
                    Some(uid) => self.uid_gone_here(&uid).await,
                    None => Ok(()),
                }
            }
            PresenceEvent::Joined { client_id, channel } => {
                let _ = self.follow_channel(&channel, false).await;
                self.join_channel(&client_id, &channel).await
            }
            PresenceEvent::Left { client_id, channel } => {
                self.client_op::<u64>(&client_id, &["leave", &channel])
                    .await?;
                self.srem(self.channel_key(&channel), &client_id).await?;
                self.unfollow_channel(&channel).await;
                Ok(())
            }
            PresenceEvent::Bound { client_id, uid } => self.bind(&client_id, &uid).await,
            PresenceEvent::Unbound { client_id, uid } => {
                if self.client_op::<u64>(&client_id, &["unbind", &uid]).await? == 1 {
                    self.srem(self.uid_key(&uid), &client_id).await?;
                    self.uid_gone_here(&uid).await?;
                }
                Ok(())
            }
            PresenceEvent::InfoChanged { client_id, info } => {
                self.set_info(&client_id, &info).await.map(drop)
            }
        };
        self.failed(r)
    }

    pub(super) async fn query_impl(&self, q: &Query) -> crate::Result<Answer> {
        self.online()?;
        let c = &self.client;
        let sorted = |mut v: Vec<String>| {
            v.sort_unstable();
            v.dedup();
            Answer::Ids(v)
        };
        Ok(match q {
            Query::IsOnline(id) => Answer::Bool(
                c.exists::<u64, _>(self.client_key(id))
                    .await
                    .map_err(cluster_err)?
                    == 1,
            ),
            Query::IsUidOnline(uid) => Answer::Bool(
                c.scard::<u64, _>(self.uid_key(uid))
                    .await
                    .map_err(cluster_err)?
                    > 0,
            ),
            Query::UidByClientId(id) => Answer::Uid(
                c.hget(self.client_key(id), "uid")
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::ClientIdsByUid(uid) => {
                sorted(c.smembers(self.uid_key(uid)).await.map_err(cluster_err)?)
            }
            Query::ClientIdsByChannel(ch) => sorted(
                c.smembers(self.channel_key(ch))
                    .await
                    .map_err(cluster_err)?,
            ),
            Query::UidsByChannel(ch) => Answer::Ids(self.uids_by_channel(ch).await?),
            Query::ClientCount => Answer::Count(self.client_count().await?),
            Query::ChannelClientCount(ch) => Answer::Count(
                c.scard::<u64, _>(self.channel_key(ch))
                    .await
                    .map_err(cluster_err)? as usize,
            ),
            Query::ChannelUidCount(ch) => Answer::Count(self.uids_by_channel(ch).await?.len()),
            Query::AllUids => Answer::Ids(self.union(self.every_node(NodeSet::Uids).await?).await?),
            Query::AllChannels => Answer::Ids(
                self.union(self.every_node(NodeSet::Channels).await?)
                    .await?,
            ),
            Query::GetInfo(id) => {
                if c.exists::<u64, _>(self.client_key(id))
                    .await
                    .map_err(cluster_err)?
                    == 1
                {
                    let info: HashMap<String, String> =
                        c.hgetall(self.info_key(id)).await.map_err(cluster_err)?;
                    Answer::Info(Some(info.into_iter().collect()))
                } else {
                    Answer::Info(None)
                }
            }
        })
    }
}
