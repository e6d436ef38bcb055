//! `send_to_client`, `send_to_uid`, `send_to_channel`, `send_to_all`, and the routing of a
//! client's protobuf application frames (wsPool's `toClientId` / `channel`).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use wsp_proto::SendMsg;

use super::args::{channels_arg, dedup, done, hub_error, opt_str, str_arg, unknown, Outcome};
use super::call::Call;
use super::rights::Caller;
use crate::pool::client::ClientHandle;
use crate::pool::presence::{Delivery, Route};
use crate::transport::frame::Frame;
use crate::wire::protocol::{
    is_addressed, now_ms, status, Command, Format, Payload, Reply, RESERVED,
};
use crate::wire::publication::Publication;

/// `send_to_client` (1005).
pub(crate) fn to_client<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let id = str_arg(&c.command.data, "client_id")?.to_string();
        let frame = outgoing(c.caller, c.command, Route::Client(id.clone()))?.frame(&[]);
        let ok = c.hub.send_to_client(&id, frame).await.map_err(hub_error)?;
        done(ok, &id, json!({ "delivered": ok as usize }))
    })
}

/// `send_to_uid` (1006).
pub(crate) fn to_uid<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let uid = str_arg(&c.command.data, "uid")?.to_string();
        let frame = outgoing(c.caller, c.command, Route::Uid(uid.clone()))?.frame(&[]);
        let n = c.hub.send_to_uid(&uid, frame).await.map_err(hub_error)?;
        Ok(Reply::ok(json!({ "delivered": n })))
    })
}

/// `send_to_channel` (1007): each channel once; a member of several gets it once.
pub(crate) fn to_channel<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let channels = channels_arg(&c.command.data)?;
        let p = outgoing(c.caller, c.command, Route::Channels(channels.clone()))?;
        let n = c.hub.publish(&channels, p).await.map_err(hub_error)?;
        Ok(Reply::ok(json!({ "delivered": n })))
    })
}

/// `send_to_all` (1008).
pub(crate) fn to_all<'a>(c: &'a Call<'a>) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let frame = outgoing(c.caller, c.command, Route::All)?.frame(&[]);
        let n = c.hub.send_to_all(frame).await.map_err(hub_error)?;
        Ok(Reply::ok(json!({ "delivered": n })))
    })
}

/// A protobuf frame with `toClientId` or `channel` is routed (whatever its `cmd`); otherwise an
/// application frame with no handler and no message hook is unknown.
pub(crate) async fn route_or_unknown(call: &Call<'_>, client: &ClientHandle) -> Outcome {
    let (hub, command, has_message_hooks) = (call.hub, call.command, call.has_message_hooks);
    let msg = match &command.sendmsg {
        Some(m) if is_addressed(m) || !RESERVED.contains(&m.cmd) => m,
        _ => return Err(unknown(&command.name)),
    };
    let route = if !msg.to_client_id.is_empty() {
        Route::Client(msg.to_client_id.clone())
    } else if !msg.channel.is_empty() {
        Route::Channels(dedup(msg.channel.clone()))
    } else if has_message_hooks {
        return Ok(Reply::silent());
    } else {
        return Err(Reply::error(
            status::NOT_FOUND,
            format!(
                "cmd {} has no handler and no toClientId or channel to route it by",
                msg.cmd
            ),
        ));
    };
    let mut out = msg.clone();
    out.from_client_id = client.id().into();
    if out.timestamp == 0 {
        out.timestamp = now_ms();
    }
    let delivery = match route {
        Route::Channels(_) => Delivery::Publication(Arc::new(Publication::Proto(out))),
        _ => Delivery::Frame(Frame::sendmsg(&out)),
    };
    let n = hub
        .deliver(route.clone(), delivery)
        .await
        .map_err(hub_error)?;
    if let Route::Client(id) = &route {
        if n == 0 {
            return Err(Reply::error(
                status::NOT_FOUND,
                format!("client {id:?} is not online"),
            ));
        }
    }
    if msg.local_id.is_empty() {
        Ok(Reply::silent())
    } else {
        Ok(Reply::ok(json!({ "delivered": n })))
    }
}

/// The format of what a `send_*` produces: the sender's; for the API, `data.format`
/// (`json`, the default, or `proto`).
fn push_format(caller: Caller<'_>, command: &Command) -> Format {
    match caller {
        Caller::Client(_) => command.format,
        Caller::Api => match command.data.get("format").and_then(Value::as_str) {
            Some("proto" | "protobuf") => Format::Proto,
            _ => Format::Json,
        },
    }
}

/// The frame recipients of a `send_*` command get, in the sender's format.
pub(crate) fn outgoing(
    caller: Caller<'_>,
    command: &Command,
    route: Route,
) -> Result<Publication, Reply> {
    let from = caller.id().map(str::to_string);
    let (kind, to) = match &route {
        Route::Client(id) => ("client", json!(id)),
        Route::Uid(uid) => ("uid", json!(uid)),
        Route::Channels(chs) => ("channel", json!(chs)),
        Route::All => ("all", Value::Null),
    };
    match push_format(caller, command) {
        Format::Json => {
            let data = match command.payload() {
                Payload::Json(v) => v,
                Payload::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            };
            let mut m = serde_json::Map::new();
            m.insert("from".into(), json!(from));
            m.insert("route".into(), json!(kind));
            m.insert("to".into(), to);
            m.insert("data".into(), data);
            Ok(Publication::Json(m))
        }
        Format::Proto => {
            let mut out = SendMsg {
                from_client_id: from.unwrap_or_default(),
                timestamp: now_ms(),
                desc: kind.into(),
                ..Default::default()
            };
            if let Some(req) = &command.sendmsg {
                out.priority = req.priority;
                out.server_id = req.server_id.clone();
            }
            if let Caller::Api = caller {
                out.cmd = command.data.get("cmd").and_then(Value::as_i64).unwrap_or(0) as i32;
            }
            match route {
                Route::Client(id) => out.to_client_id = id,
                Route::Channels(chs) => out.channel = chs,
                _ => {}
            }
            match command.payload() {
                Payload::Bytes(b) => out.cmd_data = b,
                Payload::Json(Value::Null) => {}
                Payload::Json(v) => out.msg = v.to_string(),
            }
            if let (Caller::Api, Some(b64)) = (caller, opt_str(&command.data, "data_base64")) {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        Reply::error(
                            status::BAD_REQUEST,
                            format!("`data_base64` is not base64: {e}"),
                        )
                    })?;
                out.cmd_data = bytes.into();
            }
            Ok(Publication::Proto(out))
        }
    }
}
