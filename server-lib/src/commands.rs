//! The built-in commands (docs/PROTOCOL.md), and the routing of protobuf application frames.
//! Each runs after the middleware, when the application has no handler of the same name; the
//! server API (`api.rs`) runs the same table as a trusted backend.

use std::sync::Arc;

use serde_json::{json, Value};
use wsp_proto::SendMsg;

use crate::app::Context;
use crate::auth::Grant;
use crate::client::ClientHandle;
use crate::close::{code, Close};
use crate::frame::Frame;
use crate::history::Recovery;
use crate::hub::Hub;
use crate::presence::{Delivery, Info, Route};
use crate::protocol::{is_addressed, now_ms, status, Command, Format, Payload, Reply, RESERVED};
use crate::publication::{Publication, Since};

type Outcome = Result<Reply, Reply>;

/// Who runs a built-in command.
#[derive(Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// A connected client: it acts on itself unless it has rights (`guard.rs`).
    Client(&'a ClientHandle),
    /// The server API: a trusted backend holding the API key. It acts on the client named by
    /// `client_id` (there is no "itself"), sends as the server (`from` is null), and is
    /// admin for every rights check; the per-client limits still apply to the clients it
    /// changes.
    Api,
}

impl<'a> Caller<'a> {
    /// The caller's own client id (none for the API).
    pub(crate) fn id(&self) -> Option<&'a str> {
        match self {
            Caller::Client(c) => Some(c.id()),
            Caller::Api => None,
        }
    }

    /// What the caller may do.
    pub(crate) fn grant(&self) -> Arc<Grant> {
        match self {
            Caller::Client(c) => c.grant(),
            Caller::Api => Arc::new(Grant::admin()),
        }
    }
}

/// Runs the built-in command `ctx.cmd()`, routes a protobuf application frame, or answers
/// "unknown command".
pub(crate) async fn builtin(ctx: Context, has_message_hooks: bool) -> Reply {
    execute(
        ctx.hub(),
        Caller::Client(ctx.client()),
        ctx.command(),
        has_message_hooks,
    )
    .await
    .unwrap_or_else(|e| e)
}

/// Runs a built-in command for the server API.
pub(crate) async fn for_api(hub: &Hub, command: &Command) -> Reply {
    if matches!(command.name.as_str(), "refresh") {
        return Reply::error(
            status::BAD_REQUEST,
            "`refresh` renews a connection's own token; the server API has none",
        );
    }
    execute(hub, Caller::Api, command, false)
        .await
        .unwrap_or_else(|e| e)
}

async fn execute(
    hub: &Hub,
    caller: Caller<'_>,
    command: &Command,
    has_message_hooks: bool,
) -> Outcome {
    crate::guard::check(hub, caller, command)?;
    let hub = hub.clone();
    let data = &command.data;
    let target = || -> Result<String, Reply> {
        opt_str(data, "client_id")
            .or(caller.id())
            .map(str::to_string)
            .ok_or_else(|| missing("client_id", "the client to act on"))
    };
    let cluster = hub_error;
    let offline =
        |id: &str| Reply::error(status::NOT_FOUND, format!("client {id:?} is not online"));
    let done = |ok: bool, id: &str, value: Value| {
        if ok {
            Ok(Reply::ok(value))
        } else {
            Err(offline(id))
        }
    };
    let cmd = command.name.as_str();
    match cmd {
        "join" | "leave" => {
            let ch = str_arg(data, "channel")?;
            let id = target()?;
            let since = since_arg(data)?;
            if cmd == "join" && hub.history().is_some() {
                if let Some(client) = hub.registry().handle(&id) {
                    let to = command.reply_to();
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
                        .map_err(cluster)?
                        .is_some()
                    {
                        // The reply, then what was missed, are queued already.
                        return Ok(Reply::silent());
                    }
                }
            }
            let ok = if cmd == "join" {
                hub.join(&id, ch).await.map_err(cluster)?
            } else {
                hub.leave(&id, ch).await.map_err(cluster)?
            };
            if !ok && cmd == "leave" {
                return Err(Reply::error(
                    status::NOT_FOUND,
                    format!("client {id:?} is not in channel {ch:?}"),
                ));
            }
            let mut d = json!({ "client_id": id, "channel": ch });
            if since.is_some() {
                // No history here (off, or the client is on another node): nothing recovered.
                d["recovered"] = Value::Bool(false);
            }
            done(ok, &id, d)
        }
        "bind_uid" => {
            let uid = str_arg(data, "uid")?;
            let id = target()?;
            let ok = hub.bind_uid(&id, uid).await.map_err(cluster)?;
            done(ok, &id, json!({ "client_id": id, "uid": uid }))
        }
        "unbind_uid" => {
            let uid = str_arg(data, "uid")?;
            let id = target()?;
            if hub.unbind_uid(&id, uid).await.map_err(cluster)? {
                Ok(Reply::ok(json!({ "client_id": id, "uid": uid })))
            } else {
                Err(Reply::error(
                    status::NOT_FOUND,
                    format!("client {id:?} is not bound to uid {uid:?}"),
                ))
            }
        }
        "send_to_client" => {
            let id = str_arg(data, "client_id")?.to_string();
            let frame = outgoing(caller, command, Route::Client(id.clone()))?.frame(&[]);
            let ok = hub.send_to_client(&id, frame).await.map_err(cluster)?;
            done(ok, &id, json!({ "delivered": ok as usize }))
        }
        "send_to_uid" => {
            let uid = str_arg(data, "uid")?.to_string();
            let frame = outgoing(caller, command, Route::Uid(uid.clone()))?.frame(&[]);
            let n = hub.send_to_uid(&uid, frame).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "delivered": n })))
        }
        "send_to_channel" => {
            let channels = dedup(channels_arg(data)?);
            let p = outgoing(caller, command, Route::Channels(channels.clone()))?;
            let n = hub.publish(&channels, p).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "delivered": n })))
        }
        "history" => {
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
            match hub.history_last(ch, limit).await {
                Err(e) => Err(cluster(e)),
                Ok(None) => Ok(Reply::ok(json!({
                    "channel": ch, "epoch": null, "offset": 0, "publications": [],
                }))),
                Ok(Some((epoch, top, entries))) => Ok(Reply::ok(json!({
                    "channel": ch,
                    "epoch": epoch,
                    "offset": top,
                    "publications": entries.iter().map(publication_json).collect::<Vec<_>>(),
                }))),
            }
        }
        "send_to_all" => {
            let frame = outgoing(caller, command, Route::All)?.frame(&[]);
            let n = hub.send_to_all(frame).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "delivered": n })))
        }
        "set_info" | "update_info" => {
            let info: Info = match data.get("info") {
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                    Reply::error(
                        status::BAD_REQUEST,
                        format!("`info` must be an object of strings: {e}"),
                    )
                })?,
                None => return Err(missing("info", "an object of strings")),
            };
            let id = target()?;
            let ok = if cmd == "set_info" {
                hub.set_info(&id, info).await
            } else {
                hub.update_info(&id, info).await
            }
            .map_err(cluster)?;
            done(ok, &id, json!({ "client_id": id }))
        }
        "get_info" => {
            let id = target()?;
            match hub.get_info(&id).await.map_err(cluster)? {
                Some(info) => Ok(Reply::ok(json!({ "client_id": id, "info": info }))),
                None => Err(offline(&id)),
            }
        }
        "is_online" => {
            let id = str_arg(data, "client_id")?;
            let b = hub.is_online(id).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "online": b })))
        }
        "is_uid_online" => {
            let uid = str_arg(data, "uid")?;
            let b = hub.is_uid_online(uid).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "online": b })))
        }
        "uid_by_client_id" => {
            let id = target()?;
            let uid = hub.uid_by_client_id(&id).await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "uid": uid })))
        }
        "client_ids_by_uid" => {
            let ids = hub
                .client_ids_by_uid(str_arg(data, "uid")?)
                .await
                .map_err(cluster)?;
            Ok(Reply::ok(json!({ "client_ids": ids })))
        }
        "client_ids_by_channel" => {
            let ids = hub
                .client_ids_by_channel(str_arg(data, "channel")?)
                .await
                .map_err(cluster)?;
            Ok(Reply::ok(json!({ "client_ids": ids })))
        }
        "uids_by_channel" => {
            let uids = hub
                .uids_by_channel(str_arg(data, "channel")?)
                .await
                .map_err(cluster)?;
            Ok(Reply::ok(json!({ "uids": uids })))
        }
        "client_count" => {
            let n = hub.client_count().await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "count": n })))
        }
        "channel_client_count" => {
            let n = hub
                .channel_client_count(str_arg(data, "channel")?)
                .await
                .map_err(cluster)?;
            Ok(Reply::ok(json!({ "count": n })))
        }
        "channel_uid_count" => {
            let n = hub
                .channel_uid_count(str_arg(data, "channel")?)
                .await
                .map_err(cluster)?;
            Ok(Reply::ok(json!({ "count": n })))
        }
        "all_uids" => {
            let uids = hub.all_uids().await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "uids": uids })))
        }
        "all_channels" => {
            let chs = hub.all_channels().await.map_err(cluster)?;
            Ok(Reply::ok(json!({ "channels": chs })))
        }
        "close_client" => {
            let id = target()?;
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
            let ok = hub
                .close_client(&id, Close::new(close_code, reason))
                .await
                .map_err(cluster)?;
            done(ok, &id, json!({ "client_id": id }))
        }
        "ping" => Ok(Reply::ok(json!({ "pong": now_ms() }))),
        "refresh" => match caller {
            Caller::Client(client) => refresh(&hub, client, str_arg(data, "token")?),
            Caller::Api => Err(Reply::error(status::BAD_REQUEST, "no token to refresh")),
        },
        _ => match caller {
            Caller::Client(client) => {
                route_or_unknown(&hub, client, command, has_message_hooks).await
            }
            Caller::Api => Err(unknown(cmd)),
        },
    }
}

/// Replaces the connection's grant with a fresh token's, which must name the same uid (and,
/// if it names one, the same client id). The connection then lives until the new `exp`.
fn refresh(hub: &Hub, client: &ClientHandle, token: &str) -> Outcome {
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

/// A protobuf frame with `toClientId` or `channel` is routed (whatever its `cmd`); otherwise an
/// application frame with no handler and no message hook is unknown.
async fn route_or_unknown(
    hub: &Hub,
    client: &ClientHandle,
    command: &Command,
    has_message_hooks: bool,
) -> Outcome {
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

/// The reply to a hub error: a limit is the caller's to fix (429, 413), anything else is ours
/// (a cluster backend failing: 500).
fn hub_error(e: crate::Error) -> Reply {
    match e {
        crate::Error::LimitReached(m) => Reply::error(status::TOO_MANY, m),
        crate::Error::TooLarge(m) => Reply::error(status::TOO_LARGE, m),
        crate::Error::NotOnline(id) => {
            Reply::error(status::NOT_FOUND, format!("client {id:?} is not online"))
        }
        e => Reply::error(status::INTERNAL, e.to_string()),
    }
}

/// Each channel once, in the order first named (a member in several gets a send once anyway;
/// a name listed twice would be published twice).
fn dedup(mut channels: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    channels.retain(|c| seen.insert(c.clone()));
    channels
}

/// "Unknown command".
fn unknown(cmd: &str) -> Reply {
    Reply::error(
        status::NOT_FOUND,
        format!("unknown cmd {cmd:?}: see docs/PROTOCOL.md for the built-in commands"),
    )
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
fn outgoing(caller: Caller<'_>, command: &Command, route: Route) -> Result<Publication, Reply> {
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

/// `join`'s optional `since`: `{"epoch": string, "offset": integer}`.
fn since_arg(data: &Value) -> Result<Option<Since>, Reply> {
    match data.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            Reply::error(
                status::BAD_REQUEST,
                format!("`since` must be {{\"epoch\": string, \"offset\": integer}}: {e}"),
            )
        }),
    }
}

/// One kept message in a `history` reply: its offset and time, and the frame as recipients
/// got it (`push`: a JSON text frame, `text`: other text, `binary`: base64, e.g. a SendMsg).
fn publication_json(e: &crate::history::Entry) -> Value {
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

fn opt_str<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn missing(key: &str, what: &str) -> Reply {
    Reply::error(
        status::BAD_REQUEST,
        format!("missing argument `{key}` ({what})"),
    )
}

fn str_arg<'a>(data: &'a Value, key: &str) -> Result<&'a str, Reply> {
    opt_str(data, key).ok_or_else(|| missing(key, "a non-empty string"))
}

fn channels_arg(data: &Value) -> Result<Vec<String>, Reply> {
    let bad = || missing("channel", "a channel name or a non-empty array of them");
    match data.get("channel") {
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(bad)
            })
            .collect(),
        _ => Err(bad()),
    }
}
