//! Presence in Redis: changes (one script), queries, and routing a delivery to the nodes
//! that have its recipients.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;

use super::envelope;
use super::{cluster_err, RedisCluster};
use crate::pool::presence::{Answer, Delivery, PresenceEvent, Query, Route};

impl RedisCluster {
    pub(super) async fn set_info(
        &self,
        id: &str,
        info: &BTreeMap<String, String>,
    ) -> crate::Result<u64> {
        let mut args: Vec<&str> = vec!["info", id];
        for (k, v) in info {
            args.push(k);
            args.push(v);
        }
        self.op(&args).await
    }

    pub(super) async fn owners(&self, ids: &[String]) -> crate::Result<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.client
            .hmget(self.key("clients"), ids.to_vec())
            .await
            .map_err(cluster_err)
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
    pub(super) async fn channel_audience(
        &self,
        chs: &[String],
        local: usize,
    ) -> crate::Result<usize> {
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

    pub(super) async fn record_impl(&self, event: PresenceEvent) -> crate::Result<()> {
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
