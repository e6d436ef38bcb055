//! The hub's presence queries: who is online, in which channels, under which uids; for the
//! whole cluster in cluster mode.

use super::{unexpected, Hub};
use crate::pool::presence::{Answer, Info, Query};
use crate::Result;

impl Hub {
    /// Answers a presence query, for the whole cluster in cluster mode.
    pub async fn query(&self, query: Query) -> Result<Answer> {
        match &self.inner.cluster {
            Some(cluster) => cluster.query(query).await,
            None => Ok(self.inner.registry.answer(&query)),
        }
    }

    async fn ask_bool(&self, q: Query) -> Result<bool> {
        match self.query(q).await? {
            Answer::Bool(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    async fn ask_count(&self, q: Query) -> Result<usize> {
        match self.query(q).await? {
            Answer::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    async fn ask_ids(&self, q: Query) -> Result<Vec<String>> {
        match self.query(q).await? {
            Answer::Ids(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// Is this client connected?
    pub async fn is_online(&self, client_id: &str) -> Result<bool> {
        self.ask_bool(Query::IsOnline(client_id.into())).await
    }

    /// Is any client bound to this uid?
    pub async fn is_uid_online(&self, uid: &str) -> Result<bool> {
        self.ask_bool(Query::IsUidOnline(uid.into())).await
    }

    /// The uid a client is bound to.
    pub async fn uid_by_client_id(&self, client_id: &str) -> Result<Option<String>> {
        match self.query(Query::UidByClientId(client_id.into())).await? {
            Answer::Uid(u) => Ok(u),
            other => Err(unexpected(other)),
        }
    }

    /// The clients bound to a uid, sorted.
    pub async fn client_ids_by_uid(&self, uid: &str) -> Result<Vec<String>> {
        self.ask_ids(Query::ClientIdsByUid(uid.into())).await
    }

    /// The clients in a channel, sorted.
    pub async fn client_ids_by_channel(&self, channel: &str) -> Result<Vec<String>> {
        self.ask_ids(Query::ClientIdsByChannel(channel.into()))
            .await
    }

    /// The distinct uids of the clients in a channel, sorted.
    pub async fn uids_by_channel(&self, channel: &str) -> Result<Vec<String>> {
        self.ask_ids(Query::UidsByChannel(channel.into())).await
    }

    /// Connected clients (all nodes in cluster mode).
    pub async fn client_count(&self) -> Result<usize> {
        self.ask_count(Query::ClientCount).await
    }

    /// Clients in a channel.
    pub async fn channel_client_count(&self, channel: &str) -> Result<usize> {
        self.ask_count(Query::ChannelClientCount(channel.into()))
            .await
    }

    /// Distinct uids in a channel.
    pub async fn channel_uid_count(&self, channel: &str) -> Result<usize> {
        self.ask_count(Query::ChannelUidCount(channel.into())).await
    }

    /// Every bound uid, sorted.
    pub async fn all_uids(&self) -> Result<Vec<String>> {
        self.ask_ids(Query::AllUids).await
    }

    /// Every channel with at least one member, sorted.
    pub async fn all_channels(&self) -> Result<Vec<String>> {
        self.ask_ids(Query::AllChannels).await
    }

    /// A client's info; `None` when it is not online.
    pub async fn get_info(&self, client_id: &str) -> Result<Option<Info>> {
        match self.query(Query::GetInfo(client_id.into())).await? {
            Answer::Info(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }
}
