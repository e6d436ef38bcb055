//! `set_info`, `update_info`, `get_info`: a client's info (keys and values, bounded by
//! `max_info_bytes` on the client's node).

use futures_util::future::BoxFuture;
use serde_json::json;

use super::args::{done, hub_error, info_arg, offline, Outcome};
use super::call::Call;
use super::membership::target;
use crate::wire::protocol::Reply;

/// `set_info` (1009): replaces the info.
pub(crate) fn set_info<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let info = info_arg(&c.command.data)?;
        let id = target(c)?;
        let ok = c.hub.set_info(&id, info).await.map_err(hub_error)?;
        done(ok, &id, json!({ "client_id": id }))
    })
}

/// `update_info` (1010): merges keys into the info.
pub(crate) fn update_info<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let info = info_arg(&c.command.data)?;
        let id = target(c)?;
        let ok = c.hub.update_info(&id, info).await.map_err(hub_error)?;
        done(ok, &id, json!({ "client_id": id }))
    })
}

/// `get_info` (1011).
pub(crate) fn get_info<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let id = target(c)?;
        match c.hub.get_info(&id).await.map_err(hub_error)? {
            Some(info) => Ok(Reply::ok(json!({ "client_id": id, "info": info }))),
            None => Err(offline(&id)),
        }
    })
}
