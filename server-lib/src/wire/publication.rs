//! A channel message before its place in the channels' history is known.
//!
//! With channel history on (`--history-size`), every message sent to a channel gets, in each
//! channel, an offset within that channel's epoch ([`Position`]), and the frame its recipients
//! get carries those positions. The positions are assigned where the history lives (this node,
//! or Redis in cluster mode), so a send builds a [`Publication`], the history assigns the
//! positions, and [`Publication::frame`] lays out the frame once for every recipient.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wsp_proto::SendMsg;

use crate::transport::frame::Frame;
use crate::wire::protocol::{status, JsonReply};

/// Where a message sits in one channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The channel.
    pub channel: String,
    /// Strictly increasing within the epoch, from 1.
    pub offset: u64,
    /// The stream's epoch: a new one whenever the history may have been lost (a restart of
    /// the node, or of Redis in cluster mode, or the history expiring).
    pub epoch: String,
}

/// What a reconnecting client last saw in a channel (`join`'s `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// The epoch of the last message it saw.
    pub epoch: String,
    /// Its offset.
    pub offset: u64,
}

/// A message on its way to one or more channels.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// A JSON push: the `data` object of `{"cmd":"message",…}`. Positions are added as
    /// `channel`, `offset`, `epoch` (the first channel's) and, for several channels,
    /// `positions`.
    Json(Map<String, Value>),
    /// A `SendMsg`. Positions are written in `serverId` as `epoch:offset`, one per channel in
    /// the order of `channel`, separated by commas.
    Proto(SendMsg),
    /// A frame built by the application (`Hub::send_to_channels`): kept in the history and
    /// delivered as it is, without positions.
    Frame(Frame),
}

impl Publication {
    /// The frame every recipient gets, with these positions (none: history is off).
    pub fn frame(&self, positions: &[Position]) -> Frame {
        match self {
            Publication::Json(data) => {
                let mut data = data.clone();
                if let Some(first) = positions.first() {
                    data.insert("channel".into(), Value::String(first.channel.clone()));
                    data.insert("offset".into(), Value::from(first.offset));
                    data.insert("epoch".into(), Value::String(first.epoch.clone()));
                    if positions.len() > 1 {
                        let all = serde_json::to_value(positions).expect("positions serialize");
                        data.insert("positions".into(), all);
                    }
                }
                Frame::json(&JsonReply {
                    cmd: "message".into(),
                    seqno: Value::String(String::new()),
                    status: status::OK,
                    msg: String::new(),
                    data: Value::Object(data),
                })
            }
            Publication::Proto(msg) if positions.is_empty() => Frame::sendmsg(msg),
            Publication::Proto(msg) => {
                let mut msg = msg.clone();
                msg.server_id = server_id(positions);
                Frame::sendmsg(&msg)
            }
            Publication::Frame(f) => f.clone(),
        }
    }
}

/// The `serverId` of a positioned SendMsg: `epoch:offset`, comma-separated per channel.
pub fn server_id(positions: &[Position]) -> String {
    positions
        .iter()
        .map(|p| format!("{}:{}", p.epoch, p.offset))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads the positions of a SendMsg push back from its `serverId` and `channel` (for clients
/// of this crate: `wsp connect`, `wsp bench`). `None` when it carries none.
pub fn positions_of(msg: &SendMsg) -> Option<Vec<Position>> {
    if msg.server_id.is_empty() || msg.channel.is_empty() {
        return None;
    }
    let parts: Vec<&str> = msg.server_id.split(',').collect();
    if parts.len() != msg.channel.len() {
        return None;
    }
    parts
        .iter()
        .zip(&msg.channel)
        .map(|(p, ch)| {
            let (epoch, offset) = p.rsplit_once(':')?;
            Some(Position {
                channel: ch.clone(),
                offset: offset.parse().ok()?,
                epoch: epoch.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsp_proto::Message as _;

    fn pos(ch: &str, offset: u64) -> Position {
        Position {
            channel: ch.into(),
            offset,
            epoch: "e1".into(),
        }
    }

    #[test]
    fn json_pushes_carry_offset_and_epoch() {
        let mut m = Map::new();
        m.insert("data".into(), Value::from("hi"));
        let p = Publication::Json(m);
        let f = p.frame(&[pos("news", 42)]);
        let v: Value = serde_json::from_str(f.as_text().unwrap()).unwrap();
        assert_eq!(v["cmd"], "message");
        assert_eq!(
            (
                &v["data"]["offset"],
                &v["data"]["epoch"],
                &v["data"]["channel"]
            ),
            (&Value::from(42), &Value::from("e1"), &Value::from("news"))
        );
        assert!(v["data"].get("positions").is_none());
        let f = p.frame(&[pos("a", 1), pos("b", 7)]);
        let v: Value = serde_json::from_str(f.as_text().unwrap()).unwrap();
        assert_eq!(v["data"]["positions"][1]["offset"], 7);
        let plain = p.frame(&[]);
        assert!(!plain.as_text().unwrap().contains("offset"));
    }

    #[test]
    fn sendmsg_positions_round_trip_through_server_id() {
        let msg = SendMsg {
            cmd: 5,
            channel: vec!["a".into(), "b:c".into()],
            server_id: "from-the-sender".into(),
            ..Default::default()
        };
        let f = Publication::Proto(msg.clone()).frame(&[pos("a", 3), pos("b:c", 9)]);
        let back = SendMsg::decode(f.payload()).unwrap();
        assert_eq!(back.server_id, "e1:3,e1:9");
        assert_eq!(
            positions_of(&back).unwrap(),
            vec![pos("a", 3), pos("b:c", 9)]
        );
        assert_eq!(positions_of(&msg), None);
        let untouched = Publication::Proto(msg.clone()).frame(&[]);
        assert_eq!(SendMsg::decode(untouched.payload()).unwrap(), msg);
    }
}
