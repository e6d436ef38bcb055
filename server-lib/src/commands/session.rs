//! `close_client`, `ping`, `refresh`, `history`: a connection's life and a channel's past.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::args::{done, hub_error, missing, opt_str, str_arg, Outcome};
use super::call::Call;
use super::membership::target;
use super::rights::Caller;
use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::transport::close::{code, Close};
use crate::wire::protocol::{now_ms, status, Reply};

/// `close_client` (1023): closes a client with `code` (1000 or 3000–4999) and `reason`.
pub(crate) fn close_client<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let data = &c.command.data;
        let id = target(c)?;
        let close_code = match data.get("code") {
            None => code::NORMAL,
            Some(v) => v
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| *c == 1000 || (3000..=4999).contains(c))
                .ok_or_else(|| {
                    Reply::error(status::BAD_REQUEST, "`code` must be 1000 or in 3000..=4999")
                })?,
        };
        let reason = opt_str(data, "reason").unwrap_or("closed by request");
        let ok = c
            .hub
            .close_client(&id, Close::new(close_code, reason))
            .await
            .map_err(hub_error)?;
        done(ok, &id, json!({ "client_id": id }))
    })
}

/// `ping` (1024): the server's clock.
pub(crate) fn ping<'a>(_: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move { Ok(Reply::ok(json!({ "pong": now_ms() }))) })
}

/// `refresh` (1025): a fresh token for this connection.
pub(crate) fn refresh<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        match c.caller {
            Caller::Client(client) => renew(c.hub, client, str_arg(&c.command.data, "token")?),
            Caller::Api => Err(Reply::error(status::BAD_REQUEST, "no token to refresh")),
        }
    })
}

/// `history` (1026): the newest messages kept for a channel.
pub(crate) fn history<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let (hub, data) = (c.hub, &c.command.data);
        let ch = str_arg(data, "channel")?;
        if hub.history().is_none() {
            return Err(Reply::error(
                status::BAD_REQUEST,
                "channel history is off: start wsp serve with --history-size N",
            ));
        }
        let size = hub.config().history_size;
        let limit = match data.get("limit") {
            None | Some(Value::Null) => size,
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| (n as usize).min(size))
                .ok_or_else(|| missing("limit", "a positive number of messages"))?,
        };
        match hub.history_last(ch, limit).await.map_err(hub_error)? {
            None => Ok(Reply::ok(json!({
                "channel": ch, "epoch": null, "offset": 0, "publications": [],
            }))),
            Some((epoch, top, entries)) => Ok(Reply::ok(json!({
                "channel": ch,
                "epoch": epoch,
                "offset": top,
                "publications": entries.iter().map(publication_json).collect::<Vec<_>>(),
            }))),
        }
    })
}

/// Replaces the connection's grant with a fresh token's, which must name the same uid (and,
/// if it names one, the same client id). The connection then lives until the new `exp`.
fn renew(hub: &Hub, client: &ClientHandle, token: &str) -> Outcome {
    let Some(auth) = &hub.config().auth else {
        return Err(Reply::error(
            status::BAD_REQUEST,
            "this server runs without authentication: there is no token to refresh",
        ));
    };
    let grant = auth
        .verify(token)
        .map_err(|e| Reply::error(status::UNAUTHORIZED, e.to_string()))?;
    let current = client.grant();
    if grant.uid != current.uid {
        return Err(Reply::error(
            status::FORBIDDEN,
            format!(
                "the new token is for uid {:?}, this connection is {:?}",
                grant.uid.as_deref().unwrap_or_default(),
                current.uid.as_deref().unwrap_or_default()
            ),
        ));
    }
    if grant
        .client_id
        .as_deref()
        .is_some_and(|id| id != client.id())
    {
        return Err(Reply::error(
            status::FORBIDDEN,
            "the new token is for another client_id",
        ));
    }
    let expires_at = grant.expires_at;
    client.set_grant(Arc::new(grant));
    Ok(Reply::ok(json!({ "expires_at": expires_at })))
}

/// One kept message in a `history` reply: its offset and time, and the frame as recipients
/// got it (`push`: a JSON text frame, `text`: other text, `binary`: base64, e.g. a SendMsg).
fn publication_json(e: &crate::pool::history::Entry) -> Value {
    let mut v = json!({ "offset": e.offset, "time": e.time_ms });
    match e.frame.as_text() {
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(j) => v["push"] = j,
            Err(_) => v["text"] = Value::String(t.to_string()),
        },
        None => {
            use base64::Engine as _;
            v["binary"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(e.frame.payload()));
        }
    }
    v
}
