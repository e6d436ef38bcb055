//! One frame as the inspector keeps it: when, which way, what kind, the bytes, and a summary
//! (cmd, from → to, channels, status, request id) read from its SendMsg or JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use wsp_proto::{Message as _, SendMsg};
use wsp_server::close::code_name;
use wsp_server::protocol::builtin_name;

use super::decode::Decoder;

/// Direction of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the server.
    In,
    /// To the server.
    Out,
}

/// WebSocket frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// Binary.
    Binary,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
    /// Close.
    Close,
}

impl Kind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Close => "close",
        }
    }
}

/// What the inspector could read from a frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Command: a built-in name, a JSON `cmd`, or a protobuf number.
    pub cmd: Option<String>,
    /// Protobuf `cmd` number.
    pub cmd_number: Option<i32>,
    /// Sender.
    pub from: Option<String>,
    /// Recipient.
    pub to: Option<String>,
    /// Channels.
    pub channels: Vec<String>,
    /// Reply status.
    pub status: Option<i64>,
    /// JSON `seqno` or protobuf `localId`.
    pub request_id: Option<String>,
    /// Close code and reason.
    pub close: Option<(u16, String)>,
}

/// A frame seen or sent.
#[derive(Debug, Clone)]
pub struct FrameRecord {
    /// Wall-clock time.
    pub at: SystemTime,
    /// Direction.
    pub dir: Dir,
    /// Frame type.
    pub kind: Kind,
    /// Payload.
    pub data: Bytes,
    /// What could be read from it.
    pub summary: Summary,
    /// How a received message travelled: bytes on the wire (headers included) and whether it
    /// came compressed. `None` for what we sent.
    pub wire: Option<Wire>,
}

/// How a received message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// Bytes on the wire, frame headers included.
    pub len: usize,
    /// It came compressed (permessage-deflate).
    pub compressed: bool,
}

impl FrameRecord {
    /// Builds a record, summarizing the payload.
    pub fn new(dir: Dir, kind: Kind, data: Bytes, close: Option<(u16, String)>) -> Self {
        let mut summary = match kind {
            Kind::Binary => summarize_binary(&data),
            Kind::Text => summarize_text(&data),
            _ => Summary::default(),
        };
        summary.close = close;
        Self {
            at: SystemTime::now(),
            dir,
            kind,
            data,
            summary,
            wire: None,
        }
    }

    /// Records how the message travelled.
    pub fn with_wire(mut self, len: usize, compressed: bool) -> Self {
        self.wire = Some(Wire { len, compressed });
        self
    }

    /// `HH:MM:SS.mmm` (UTC).
    pub fn clock(&self) -> String {
        let ms = self
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let s = ms / 1000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            ms % 1000
        )
    }

    /// The decoded SendMsg, if this is one.
    pub fn sendmsg(&self) -> Option<SendMsg> {
        (self.kind == Kind::Binary)
            .then(|| SendMsg::decode(self.data.as_ref()).ok())
            .flatten()
    }

    /// One JSON object for `--print` and `--record`: the frame, and everything decoded from it.
    pub fn to_json(&self, decoder: &Decoder) -> Value {
        let ms = self
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let s = &self.summary;
        let mut v = json!({
            "ts_ms": ms,
            "dir": if self.dir == Dir::In { "in" } else { "out" },
            "type": self.kind.name(),
            "size": self.data.len(),
        });
        let o = v.as_object_mut().expect("object");
        if let Some(w) = self.wire {
            o.insert("wire_size".into(), w.len.into());
            o.insert("compressed".into(), w.compressed.into());
        }
        match self.kind {
            Kind::Text => {
                let text = String::from_utf8_lossy(&self.data).into_owned();
                if let Ok(j) = serde_json::from_str::<Value>(&text) {
                    o.insert("json".into(), j);
                }
                o.insert("text".into(), text.into());
            }
            Kind::Binary => {
                o.insert(
                    "base64".into(),
                    base64::engine::general_purpose::STANDARD
                        .encode(&self.data)
                        .into(),
                );
                if let (Some(full), Some(msg)) = (decoder.sendmsg_json(&self.data), self.sendmsg())
                {
                    o.insert("sendmsg".into(), full);
                    let cd = decoder.cmd_data(msg.cmd, &msg.cmd_data);
                    if cd != super::decode::CmdData::Empty {
                        o.insert("cmd_data".into(), cd.to_json());
                    }
                }
            }
            Kind::Close => {
                if let Some((code, reason)) = &s.close {
                    o.insert(
                        "close".into(),
                        json!({ "code": code, "name": code_name(*code), "reason": reason }),
                    );
                }
            }
            Kind::Ping | Kind::Pong => {}
        }
        if let Some(c) = &s.cmd {
            o.insert("cmd".into(), c.clone().into());
        }
        if let Some(st) = s.status {
            o.insert("status".into(), st.into());
        }
        v
    }
}

fn summarize_binary(data: &[u8]) -> Summary {
    let Ok(m) = SendMsg::decode(data) else {
        return Summary::default();
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Summary {
        cmd: Some(match (m.cmd, builtin_name(m.cmd)) {
            (_, Some(name)) => name.to_string(),
            (1000, None) => "welcome".into(),
            (1099, None) => "error".into(),
            (n, None) => n.to_string(),
        }),
        cmd_number: Some(m.cmd),
        from: nonempty(&m.from_client_id),
        to: nonempty(&m.to_client_id),
        channels: m.channel,
        status: Some(m.status as i64),
        request_id: nonempty(&m.local_id),
        close: None,
    }
}

fn summarize_text(data: &[u8]) -> Summary {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return Summary::default();
    };
    let str_of = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let d = &v["data"];
    let channels = match &d["to"] {
        Value::Array(a) if d["route"] == "channel" => a
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
        _ => d["channel"]
            .as_str()
            .map(|c| vec![c.to_string()])
            .unwrap_or_default(),
    };
    Summary {
        cmd: v["cmd"].as_str().map(str::to_string),
        cmd_number: None,
        from: d["from"].as_str().map(str::to_string),
        to: d["to"]
            .as_str()
            .map(str::to_string)
            .or_else(|| d["client_id"].as_str().map(str::to_string)),
        channels,
        status: v["status"].as_i64(),
        request_id: str_of(&v["seqno"]),
        close: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_read_sendmsg_and_json() {
        let m = SendMsg {
            cmd: 1001,
            local_id: "7".into(),
            channel: vec!["news".into()],
            ..Default::default()
        };
        let r = FrameRecord::new(Dir::Out, Kind::Binary, m.encode_to_vec().into(), None);
        assert_eq!(r.summary.cmd.as_deref(), Some("join"));
        assert_eq!(r.summary.request_id.as_deref(), Some("7"));
        assert_eq!(r.summary.channels, vec!["news"]);
        let t = br#"{"cmd":"message","seqno":"","status":0,"data":{"from":"a","route":"channel","to":["x"],"data":1}}"#;
        let r = FrameRecord::new(Dir::In, Kind::Text, Bytes::from_static(t), None);
        assert_eq!(
            (r.summary.cmd.as_deref(), r.summary.from.as_deref()),
            (Some("message"), Some("a"))
        );
        assert_eq!(r.summary.channels, vec!["x"]);
        assert_eq!(r.summary.request_id, None);
        let j = r.to_json(&Decoder::default());
        assert_eq!(j["json"]["data"]["data"], 1);
        assert_eq!(j["dir"], "in");
    }
}
