//! The frames the connection itself sends: the welcome frame, and the 429 for a frame over the
//! rate limit.

use serde_json::{json, Value};
use wsp_proto::{Message as _, SendMsg};

use crate::pool::hub::Hub;
use crate::transport::frame::Frame;
use crate::transport::Message;
use crate::wire::protocol::{
    now_ms, status, Command, Format, JsonReply, JsonRequest, Reply, CMD_ERROR, CMD_WELCOME,
};

/// The error a client gets (once per episode) for a frame over its rate limit, in the dropped
/// request's form and with its `seqno` / `localId` when it has one, so a client waiting for
/// that reply gets this instead of nothing: JSON for text, SendMsg for binary.
pub(super) fn rate_limited(dropped: &Message, client_id: &str, cfg: &crate::ServerConfig) -> Frame {
    let msg = format!(
        "rate limit: at most {} frames/s (burst {}); frames are being dropped, and the connection closes (1008) if this goes on",
        cfg.max_messages_per_sec, cfg.message_burst
    );
    let request = match dropped {
        Message::Text(t) => serde_json::from_str::<JsonRequest>(t.as_str())
            .ok()
            .map(|r| Command::from_json(r, &crate::commands::Table)),
        Message::Binary(b) => SendMsg::decode(b.as_ref())
            .ok()
            .and_then(|m| Command::from_sendmsg(m, &crate::commands::Table).ok()),
        _ => None,
    };
    if let Some(cmd) = request {
        return Reply::error(status::TOO_MANY, msg).encode(
            &cmd.reply_to(),
            client_id,
            &cfg.server_id,
        );
    }
    if matches!(dropped, Message::Text(_)) {
        return Frame::json(&JsonReply {
            cmd: String::new(),
            seqno: Value::String(String::new()),
            status: status::TOO_MANY,
            msg,
            data: Value::Null,
        });
    }
    Frame::sendmsg(&SendMsg {
        cmd: CMD_ERROR,
        timestamp: now_ms(),
        status: status::TOO_MANY,
        desc: msg,
        ..Default::default()
    })
}

/// The first frame a client gets: its id, channels and the server's settings.
pub(super) fn welcome(
    hub: &Hub,
    id: &str,
    uid: Option<&str>,
    channels: &[String],
    format: Option<Format>,
) -> Frame {
    let cfg = hub.config();
    let data = json!({
        "client_id": id,
        "uid": uid,
        "channels": channels,
        "server_id": cfg.server_id,
        "heartbeat_timeout_ms": cfg.heartbeat_timeout.as_millis() as u64,
        "max_message_size": cfg.max_message_size,
        // Channel pushes carry positions the server wrote (and `join` takes `since`).
        "history": cfg.history_size > 0,
    });
    match format.unwrap_or(Format::Proto) {
        Format::Json => Frame::json(&JsonReply {
            cmd: "welcome".into(),
            seqno: Value::String(String::new()),
            status: status::OK,
            msg: "ok".into(),
            data,
        }),
        Format::Proto => Frame::sendmsg(&SendMsg {
            cmd: CMD_WELCOME,
            timestamp: now_ms(),
            to_client_id: id.into(),
            server_id: cfg.server_id.clone(),
            channel: channels.to_vec(),
            msg: data.to_string(),
            desc: "welcome".into(),
            ..Default::default()
        }),
    }
}
