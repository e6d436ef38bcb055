//! `join`, `leave`, `bind_uid`, `unbind_uid`: what a client is in and who it is.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::args::{done, hub_error, since_arg, str_arg, Outcome};
use super::call::Call;
use crate::pool::history::Recovery;
use crate::wire::protocol::{status, Reply};

/// The client a command acts on: `client_id`, or the caller itself.
pub(crate) fn target(c: &Call<'_>) -> Result<String, Reply> {
    super::args::opt_str(&c.command.data, "client_id")
        .or(c.caller.id())
        .map(str::to_string)
        .ok_or_else(|| super::args::missing("client_id", "the client to act on"))
}

/// `join` (1001): with history on and a client of this node, through the history (the reply,
/// then what was missed since `since`, are queued with the channel locked).
pub(crate) fn join<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let (hub, data) = (c.hub, &c.command.data);
        let ch = str_arg(data, "channel")?;
        let id = target(c)?;
        let since = since_arg(data)?;
        if hub.history().is_some() {
            if let Some(client) = hub.registry().handle(&id) {
                let to = c.command.reply_to();
                let server_id = hub.config().server_id.clone();
                let reply = |r: &Recovery| {
                    let mut d = json!({
                        "client_id": id, "channel": ch, "epoch": r.epoch, "offset": r.offset,
                    });
                    if let Some(recovered) = r.recovered {
                        d["recovered"] = Value::Bool(recovered);
                        d["missed"] = Value::from(r.missed);
                    }
                    Reply::ok(d).encode(&to, &id, &server_id)
                };
                if hub
                    .join_recovering(&client, ch, since.as_ref(), reply)
                    .await
                    .map_err(hub_error)?
                    .is_some()
                {
                    return Ok(Reply::silent());
                }
            }
        }
        let ok = hub.join(&id, ch).await.map_err(hub_error)?;
        let mut d = json!({ "client_id": id, "channel": ch });
        if since.is_some() {
            // No history here (off, or the client is on another node): nothing recovered.
            d["recovered"] = Value::Bool(false);
        }
        done(ok, &id, d)
    })
}

/// `leave` (1002).
pub(crate) fn leave<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let ch = str_arg(&c.command.data, "channel")?;
        let id = target(c)?;
        if c.hub.leave(&id, ch).await.map_err(hub_error)? {
            Ok(Reply::ok(json!({ "client_id": id, "channel": ch })))
        } else {
            Err(Reply::error(
                status::NOT_FOUND,
                format!("client {id:?} is not in channel {ch:?}"),
            ))
        }
    })
}

/// `bind_uid` (1003).
pub(crate) fn bind_uid<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let uid = str_arg(&c.command.data, "uid")?;
        let id = target(c)?;
        let ok = c.hub.bind_uid(&id, uid).await.map_err(hub_error)?;
        done(ok, &id, json!({ "client_id": id, "uid": uid }))
    })
}

/// `unbind_uid` (1004).
pub(crate) fn unbind_uid<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let uid = str_arg(&c.command.data, "uid")?;
        let id = target(c)?;
        if c.hub.unbind_uid(&id, uid).await.map_err(hub_error)? {
            Ok(Reply::ok(json!({ "client_id": id, "uid": uid })))
        } else {
            Err(Reply::error(
                status::NOT_FOUND,
                format!("client {id:?} is not bound to uid {uid:?}"),
            ))
        }
    })
}
