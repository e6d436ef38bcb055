//! The hub as a cluster backend sees it: [`Local`] for [`WeakHub`], which never keeps the
//! hub alive (the backend is owned by the hub).

use futures_util::future::BoxFuture;

use super::WeakHub;
use crate::pool::cluster::{ClusterEvent, Local};
use crate::pool::history::Limits;
use crate::pool::presence::{Answer, Delivery, Info, PresenceEvent, Query, Route};
use crate::pool::registry::{Delivered, Registry};
use crate::wire::publication::{Position, Publication};
use crate::Result;

impl Local for WeakHub {
    fn alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    fn history_limits(&self) -> Option<Limits> {
        self.upgrade()?.history().map(|h| *h.limits())
    }

    fn count(&self, event: ClusterEvent) {
        let Some(hub) = self.upgrade() else { return };
        if let Some(m) = hub.metrics() {
            match event {
                ClusterEvent::Published => m.cluster_published(),
                ClusterEvent::Received => m.cluster_received(),
                ClusterEvent::Error => m.redis_error(),
            }
        }
    }

    fn channel_len(&self, channel: &str) -> usize {
        self.upgrade()
            .map_or(0, |h| h.inner.registry.channel_len(channel))
    }

    fn entries(&self) -> Vec<(String, Option<String>, Vec<String>, Info)> {
        self.upgrade()
            .map(|h| h.inner.registry.entries())
            .unwrap_or_default()
    }

    fn answer(&self, query: &Query) -> Answer {
        match self.upgrade() {
            Some(h) => h.inner.registry.answer(query),
            None => Registry::default().answer(query),
        }
    }

    fn deliver_local(&self, route: &Route, delivery: &Delivery) -> Delivered {
        self.upgrade()
            .map(|h| h.deliver_local(route, delivery))
            .unwrap_or_default()
    }

    fn deliver_channel_except(&self, channel: &str, except: &[String], delivery: &Delivery) {
        if let Some(h) = self.upgrade() {
            h.deliver_channel_except(channel, except, delivery);
        }
    }

    fn deliver_positioned(
        &self,
        channels: &[String],
        index: Option<usize>,
        positions: &[Position],
        time_ms: i64,
        p: &Publication,
        follows: &dyn Fn(&str) -> bool,
    ) {
        if let Some(h) = self.upgrade() {
            h.deliver_positioned(channels, index, positions, time_ms, p, follows);
        }
    }

    fn apply(&self, event: PresenceEvent) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let Some(hub) = self.upgrade() else {
                return Ok(false);
            };
            match event {
                PresenceEvent::Joined { client_id, channel } => {
                    hub.join(&client_id, &channel).await
                }
                PresenceEvent::Left { client_id, channel } => hub.leave(&client_id, &channel).await,
                PresenceEvent::Bound { client_id, uid } => hub.bind_uid(&client_id, &uid).await,
                PresenceEvent::Unbound { client_id, uid } => hub.unbind_uid(&client_id, &uid).await,
                PresenceEvent::InfoChanged { client_id, info } => {
                    hub.update_info(&client_id, info).await
                }
                PresenceEvent::Connected { .. } | PresenceEvent::Disconnected { .. } => Ok(false),
            }
        })
    }
}
