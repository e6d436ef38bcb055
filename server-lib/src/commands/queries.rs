//! The presence queries: who is online, in which channels, under which uids. In cluster mode
//! each answers for the whole cluster.

use futures_util::future::BoxFuture;
use serde_json::json;

use super::args::{hub_error, str_arg, Outcome};
use super::call::Call;
use super::membership::target;
use crate::wire::protocol::Reply;

/// A query handler: its argument (by key; `None`: none), the hub call, and the reply's key.
macro_rules! query {
    ($(#[$doc:meta])* $name:ident, $arg:literal, |$hub:ident, $a:ident| $call:expr, $key:literal) => {
        $(#[$doc])*
        pub(crate) fn $name<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let $hub = c.hub;
                let $a = str_arg(&c.command.data, $arg)?;
                let v = $call.await.map_err(hub_error)?;
                Ok(Reply::ok(json!({ $key: v })))
            })
        }
    };
    ($(#[$doc:meta])* $name:ident, |$hub:ident| $call:expr, $key:literal) => {
        $(#[$doc])*
        pub(crate) fn $name<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                let $hub = c.hub;
                let v = $call.await.map_err(hub_error)?;
                Ok(Reply::ok(json!({ $key: v })))
            })
        }
    };
}

query!(
    /// `is_online` (1012).
    is_online, "client_id", |hub, id| hub.is_online(id), "online"
);
query!(
    /// `is_uid_online` (1013).
    is_uid_online, "uid", |hub, uid| hub.is_uid_online(uid), "online"
);
query!(
    /// `client_ids_by_uid` (1015).
    client_ids_by_uid, "uid", |hub, uid| hub.client_ids_by_uid(uid), "client_ids"
);
query!(
    /// `client_ids_by_channel` (1016).
    client_ids_by_channel, "channel", |hub, ch| hub.client_ids_by_channel(ch), "client_ids"
);
query!(
    /// `uids_by_channel` (1017).
    uids_by_channel, "channel", |hub, ch| hub.uids_by_channel(ch), "uids"
);
query!(
    /// `client_count` (1018).
    client_count, |hub| hub.client_count(), "count"
);
query!(
    /// `channel_client_count` (1019).
    channel_client_count, "channel", |hub, ch| hub.channel_client_count(ch), "count"
);
query!(
    /// `channel_uid_count` (1020).
    channel_uid_count, "channel", |hub, ch| hub.channel_uid_count(ch), "count"
);
query!(
    /// `all_uids` (1021).
    all_uids, |hub| hub.all_uids(), "uids"
);
query!(
    /// `all_channels` (1022).
    all_channels, |hub| hub.all_channels(), "channels"
);

/// `uid_by_client_id` (1014): of `client_id`, or the caller.
pub(crate) fn uid_by_client_id<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let id = target(c)?;
        let uid = c.hub.uid_by_client_id(&id).await.map_err(hub_error)?;
        Ok(Reply::ok(json!({ "uid": uid })))
    })
}
