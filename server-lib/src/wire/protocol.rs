//! The wire protocol's vocabulary: built-in command names and numbers, statuses, the JSON
//! request/reply shapes, and their protobuf (`SendMsg`) forms. `docs/PROTOCOL.md` is the
//! contract this module implements.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wsp_proto::SendMsg;

use crate::transport::frame::Frame;

/// Reply statuses. 0 is success; the others borrow HTTP's meaning.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// Malformed frame, or a missing or mistyped argument.
    pub const BAD_REQUEST: i32 = 400;
    /// No valid token (`refresh` with a bad one).
    pub const UNAUTHORIZED: i32 = 401;
    /// Not allowed: acting on another client without rights, a channel outside the token's,
    /// or refused by a middleware.
    pub const FORBIDDEN: i32 = 403;
    /// Unknown command, or the client/uid named is not online.
    pub const NOT_FOUND: i32 = 404;
    /// The id is taken.
    pub const CONFLICT: i32 = 409;
    /// An argument is over its size limit (info).
    pub const TOO_LARGE: i32 = 413;
    /// Over a limit: the rate limit, or the channels per client.
    pub const TOO_MANY: i32 = 429;
    /// Internal error (a cluster backend failed...).
    pub const INTERNAL: i32 = 500;
}

/// `cmd` of the welcome frame, the first frame a client receives (protobuf form).
pub const CMD_WELCOME: i32 = 1000;
/// `cmd` of an error reply to a frame that could not even be decoded (protobuf form).
pub const CMD_ERROR: i32 = 1099;
/// Protobuf `cmd` numbers 1000..=1099 are reserved for the protocol; applications use others.
pub const RESERVED: std::ops::RangeInclusive<i32> = 1000..=1099;

/// The names and numbers of the built-in commands, as the parsers need them. The commands
/// layer declares them (`wsp_server::protocol::BUILTINS`) and hands them in: this layer knows
/// the protocol's shapes, not which commands exist.
pub trait Names {
    /// The number of a built-in command name.
    fn number(&self, name: &str) -> Option<i32>;
    /// The name of a built-in command number.
    fn name(&self, number: i32) -> Option<&'static str>;
}

/// A JSON request (wsrv's shape): `{"cmd", "seqno", "data"}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct JsonRequest {
    /// Command name.
    pub cmd: String,
    /// Request id, echoed verbatim in the reply (any JSON value; usually a string).
    #[serde(default)]
    pub seqno: Value,
    /// Arguments.
    #[serde(default)]
    pub data: Value,
}

/// A JSON reply or push (wsrv's shape): `{"cmd", "seqno", "status", "msg", "data"}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct JsonReply {
    /// The request's command, or the push's kind.
    pub cmd: String,
    /// The request's seqno, verbatim (`""` for pushes).
    pub seqno: Value,
    /// 0 on success.
    pub status: i32,
    /// `"ok"`, or what went wrong and what to do.
    pub msg: String,
    /// The result.
    pub data: Value,
}

/// How the client spoke, so the reply is in the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text frames with JSON.
    Json,
    /// Binary frames with `SendMsg`.
    Proto,
}

/// The outcome of a command, before it is encoded in the client's format.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// 0 on success.
    pub status: i32,
    /// `"ok"`, or what went wrong.
    pub msg: String,
    /// The result (JSON; in protobuf replies it travels as JSON text in `msg`).
    pub data: Value,
    /// No frame at all goes back (a routed message without `localId`).
    pub silent: bool,
}

impl Reply {
    /// A success with `data`.
    pub fn ok(data: Value) -> Self {
        Self {
            status: status::OK,
            msg: "ok".into(),
            data,
            silent: false,
        }
    }

    /// Nothing is sent back.
    pub fn silent() -> Self {
        Self {
            silent: true,
            ..Self::ok(Value::Null)
        }
    }

    /// A failure with a status and a message saying what went wrong and what to do.
    pub fn error(status: i32, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
            data: Value::Null,
            silent: false,
        }
    }

    /// Encodes this reply to the request `to` in the request's format.
    pub fn encode(&self, to: &ReplyTo, to_client: &str, server_id: &str) -> Frame {
        match to.format {
            Format::Json => Frame::json(&JsonReply {
                cmd: to.name.clone(),
                seqno: to.seqno.clone(),
                status: self.status,
                msg: self.msg.clone(),
                data: self.data.clone(),
            }),
            Format::Proto => Frame::sendmsg(&SendMsg {
                cmd: to.number,
                timestamp: now_ms(),
                to_client_id: to_client.into(),
                status: self.status,
                local_id: to.seqno.as_str().unwrap_or_default().into(),
                server_id: server_id.into(),
                msg: if self.data.is_null() {
                    String::new()
                } else {
                    self.data.to_string()
                },
                desc: self.msg.clone(),
                ..Default::default()
            }),
        }
    }
}

/// What a reply needs of its request (kept apart so the request itself can move into the
/// handler without a copy).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyTo {
    /// Command name (JSON replies).
    pub name: String,
    /// Command number (protobuf replies).
    pub number: i32,
    /// `seqno` / `localId` to echo.
    pub seqno: Value,
    /// Reply format.
    pub format: Format,
}

/// A decoded request, in either format: what middleware and handlers see.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name: a built-in name, an application name, or for protobuf application frames
    /// the decimal `cmd` number.
    pub name: String,
    /// Protobuf `cmd` number (built-ins have theirs; 0 for JSON application commands).
    pub number: i32,
    /// JSON `seqno`, or protobuf `localId` as a string.
    pub seqno: Value,
    /// Arguments: JSON `data`, or protobuf `msg` parsed as JSON (`null` when empty).
    pub data: Value,
    /// The whole `SendMsg`, for frames that came as protobuf.
    pub sendmsg: Option<SendMsg>,
    /// The format the request came in (and the reply goes out in).
    pub format: Format,
}

impl Command {
    /// From a JSON request (`names`: the built-in commands).
    pub fn from_json(req: JsonRequest, names: &dyn Names) -> Self {
        Self {
            number: names.number(&req.cmd).unwrap_or(0),
            name: req.cmd,
            seqno: req.seqno,
            data: req.data,
            sendmsg: None,
            format: Format::Json,
        }
    }

    /// From a protobuf request (`names`: the built-in commands). Errors when `msg` is neither
    /// empty nor JSON.
    pub fn from_sendmsg(msg: SendMsg, names: &dyn Names) -> Result<Self, String> {
        // wsPool leaves every field but toClientId, fromClientId and channel to the
        // application: a frame addressed to someone is an application frame, whatever its cmd.
        let addressed = is_addressed(&msg);
        let name = names
            .name(msg.cmd)
            .filter(|_| !addressed)
            .map(str::to_string)
            .unwrap_or_else(|| msg.cmd.to_string());
        let data = if !addressed && RESERVED.contains(&msg.cmd) && !msg.msg.is_empty() {
            serde_json::from_str(&msg.msg)
                .map_err(|e| format!("`msg` of a built-in command must be a JSON object: {e}"))?
        } else {
            Value::Null
        };
        Ok(Self {
            number: msg.cmd,
            name,
            seqno: Value::String(msg.local_id.clone()),
            data,
            sendmsg: Some(msg),
            format: Format::Proto,
        })
    }

    /// What the reply to this request needs.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            name: self.name.clone(),
            number: self.number,
            seqno: self.seqno.clone(),
            format: self.format,
        }
    }

    /// How many publishes this request asks for: the channels a `send_to_channel` or an
    /// addressed SendMsg names (at least 1). The rate limit charges a request this much.
    pub fn publishes(&self) -> usize {
        let named = match (self.name.as_str(), self.data.get("channel")) {
            ("send_to_channel", Some(Value::Array(cs))) => cs.len(),
            _ => self
                .sendmsg
                .as_ref()
                .filter(|m| is_addressed(m))
                .map_or(0, |m| m.channel.len()),
        };
        named.max(1)
    }

    /// The payload of a `send_*` command: protobuf `cmdData` when non-empty, else `data.data`.
    pub fn payload(&self) -> Payload {
        if let Some(m) = &self.sendmsg {
            if !m.cmd_data.is_empty() {
                return Payload::Bytes(m.cmd_data.clone());
            }
        }
        Payload::Json(self.data.get("data").cloned().unwrap_or(Value::Null))
    }
}

/// A `SendMsg` with `toClientId` or `channel` set: routed as an application frame whatever its
/// `cmd` (built-in numbers included).
pub fn is_addressed(msg: &SendMsg) -> bool {
    !msg.to_client_id.is_empty() || !msg.channel.is_empty()
}

/// What a `send_*` command carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Raw bytes (protobuf `cmdData`).
    Bytes(Bytes),
    /// A JSON value (JSON `data.data`).
    Json(Value),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Join;
    impl Names for Join {
        fn number(&self, name: &str) -> Option<i32> {
            (name == "join").then_some(1001)
        }
        fn name(&self, number: i32) -> Option<&'static str> {
            (number == 1001).then_some("join")
        }
    }

    #[test]
    fn protobuf_builtin_with_bad_json_is_an_error() {
        let msg = SendMsg {
            cmd: 1001,
            msg: "{not json".into(),
            ..Default::default()
        };
        assert!(Command::from_sendmsg(msg, &Join).is_err());
    }

    #[test]
    fn an_addressed_frame_is_the_applications_whatever_its_cmd() {
        let msg = SendMsg {
            cmd: 1001,
            to_client_id: "b".into(),
            msg: "not json either".into(),
            ..Default::default()
        };
        let c = Command::from_sendmsg(msg, &Join).unwrap();
        assert_eq!(c.name, "1001");
        let j = Command::from_json(
            JsonRequest {
                cmd: "join".into(),
                seqno: Value::Null,
                data: Value::Null,
            },
            &Join,
        );
        assert_eq!(j.number, 1001);
    }
}
