//! What travels between nodes over Redis pub/sub: a JSON header line, then the frame's raw
//! bytes (never re-encoded, never base64). With channel history, the history script puts one
//! more line in front, `H{"positions":[…],"time":ms,"index":i}`: where Redis placed the
//! message in each channel (the same bytes are kept in the channel's stream). A send to
//! several channels is published once per channel, copy `i` on channel `i`'s topic with the
//! positions of channels `0..=i`; a node delivers copy `i` to the members of channel `i` that
//! are in no later channel of the send, so each member gets it once, with every position it
//! needs.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use wsp_proto::{Message as _, SendMsg};

use crate::pool::presence::{Delivery, PresenceEvent, Route};
use crate::transport::close::Close;
use crate::transport::frame::{Frame, Kind};
use crate::wire::publication::{Position, Publication};

/// What a message asks the receiving node to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Body {
    /// Deliver a text frame (payload: the text).
    Text,
    /// Deliver a binary frame (payload: the bytes).
    Binary,
    /// A JSON push to stamp with its positions (payload: the push's `data` object).
    Json,
    /// A SendMsg to stamp with its positions (payload: the encoded SendMsg).
    SendMsg,
    /// Close the matching clients.
    Close {
        /// Close code.
        code: u16,
        /// Reason.
        reason: String,
    },
    /// Apply a presence change to a local client (`Cluster::forward`).
    Event {
        /// The change.
        event: PresenceEvent,
    },
}

/// The header of a cluster message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Node that sent it (a node ignores its own broadcasts: it delivered locally already).
    pub origin: String,
    /// Where to deliver on the receiving node.
    pub route: Route,
    /// For a multi-channel send published on `route`'s channel number `index`: deliver only to
    /// members not in an earlier channel of the list (each member once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// What to do.
    #[serde(flatten)]
    pub body: Body,
}

/// Encodes a header and payload.
pub fn encode(header: &Header, payload: &[u8]) -> Bytes {
    let head = serde_json::to_vec(header).expect("header serializes");
    let mut b = BytesMut::with_capacity(head.len() + 1 + payload.len());
    b.extend_from_slice(&head);
    b.extend_from_slice(b"\n");
    b.extend_from_slice(payload);
    b.freeze()
}

/// Encodes a delivery.
pub fn delivery(origin: &str, route: Route, index: Option<usize>, d: &Delivery) -> Bytes {
    let (body, payload): (Body, Bytes) = match d {
        Delivery::Frame(f) if f.kind() == Kind::Text => (Body::Text, f.payload()),
        Delivery::Frame(f) => (Body::Binary, f.payload()),
        Delivery::Publication(p) => match &**p {
            Publication::Json(m) => (
                Body::Json,
                serde_json::to_vec(m).expect("a JSON map serializes").into(),
            ),
            Publication::Proto(msg) => (Body::SendMsg, msg.encode_to_vec().into()),
            Publication::Frame(f) if f.kind() == Kind::Text => (Body::Text, f.payload()),
            Publication::Frame(f) => (Body::Binary, f.payload()),
        },
        Delivery::Close(c) => (
            Body::Close {
                code: c.code,
                reason: c.reason.clone(),
            },
            Bytes::new(),
        ),
    };
    encode(
        &Header {
            origin: origin.into(),
            route,
            index,
            body,
        },
        &payload,
    )
}

/// The history script's line: where the message sits in each of its channels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Stamp {
    /// One per channel of the send, in its order.
    pub positions: Vec<Position>,
    /// When Redis kept it (ms since the Unix epoch).
    #[serde(default)]
    pub time: i64,
    /// Which channel's copy this is (a multi-channel send is published once per channel).
    #[serde(default)]
    pub index: Option<usize>,
}

/// A decoded message.
#[derive(Debug)]
pub struct Decoded {
    /// The header.
    pub header: Header,
    /// What to deliver (none for a presence event).
    pub delivery: Option<Delivery>,
    /// Its positions, when it came through the history script.
    pub stamp: Option<Stamp>,
}

impl Decoded {
    /// The publication to stamp (a positioned message is always one: frames become
    /// [`Publication::Frame`]).
    pub fn publication(&self) -> Option<Publication> {
        match &self.delivery {
            Some(Delivery::Publication(p)) => Some((**p).clone()),
            Some(Delivery::Frame(f)) => Some(Publication::Frame(f.clone())),
            _ => None,
        }
    }
}

/// Decodes a message: its stamp, if any, the header and, for frames, the delivery.
pub fn decode(bytes: &Bytes) -> Result<Decoded, String> {
    let (stamp, bytes) = if bytes.first() == Some(&b'H') {
        let end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no stamp line")?;
        let stamp: Stamp =
            serde_json::from_slice(&bytes[1..end]).map_err(|e| format!("bad stamp: {e}"))?;
        (Some(stamp), bytes.slice(end + 1..))
    } else {
        (None, bytes.clone())
    };
    let (header, delivery) = decode_envelope(&bytes)?;
    Ok(Decoded {
        header,
        delivery,
        stamp,
    })
}

fn decode_envelope(bytes: &Bytes) -> Result<(Header, Option<Delivery>), String> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header: Header =
        serde_json::from_slice(&bytes[..split]).map_err(|e| format!("bad header: {e}"))?;
    let payload = bytes.slice(split + 1..);
    let delivery = match &header.body {
        Body::Text => {
            let text =
                Frame::text_bytes(&payload).map_err(|_| "text frame is not UTF-8".to_string())?;
            Some(Delivery::Frame(text))
        }
        Body::Binary => Some(Delivery::Frame(Frame::binary(&payload))),
        Body::Json => {
            let map =
                serde_json::from_slice(&payload).map_err(|e| format!("bad JSON push: {e}"))?;
            Some(Delivery::Publication(Arc::new(Publication::Json(map))))
        }
        Body::SendMsg => {
            let msg = SendMsg::decode(payload).map_err(|e| format!("bad SendMsg: {e}"))?;
            Some(Delivery::Publication(Arc::new(Publication::Proto(msg))))
        }
        Body::Close { code, reason } => Some(Delivery::Close(Close::new(*code, reason.clone()))),
        Body::Event { .. } => None,
    };
    Ok((header, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_without_reencoding() {
        let d = Delivery::Frame(Frame::binary(b"\x00\x01\n\x02"));
        let wire = delivery(
            "n1",
            Route::Channels(vec!["a".into(), "b".into()]),
            Some(1),
            &d,
        );
        let Decoded {
            header: h,
            delivery: back,
            stamp,
        } = decode(&wire).unwrap();
        assert!(stamp.is_none());
        assert_eq!(h.origin, "n1");
        assert_eq!(h.index, Some(1));
        match back {
            Some(Delivery::Frame(f)) => assert_eq!(&f.payload()[..], b"\x00\x01\n\x02"),
            other => panic!("{other:?}"),
        }
        let ev = Header {
            origin: "n2".into(),
            route: Route::Client("c".into()),
            index: None,
            body: Body::Event {
                event: PresenceEvent::Joined {
                    client_id: "c".into(),
                    channel: "x".into(),
                },
            },
        };
        let d = decode(&encode(&ev, b"")).unwrap();
        assert_eq!(d.header, ev);
        assert!(d.delivery.is_none());
    }

    #[test]
    fn a_stamped_publication_decodes_with_its_positions() {
        let p = Delivery::Publication(Arc::new(Publication::Proto(SendMsg {
            cmd: 3,
            channel: vec!["a".into()],
            ..Default::default()
        })));
        let env = delivery("n1", Route::Channels(vec!["a".into()]), None, &p);
        let mut wire =
            br#"H{"positions":[{"channel":"a","offset":7,"epoch":"e"}],"time":5}"#.to_vec();
        wire.push(b'\n');
        wire.extend_from_slice(&env);
        let d = decode(&Bytes::from(wire)).unwrap();
        let stamp = d.stamp.clone().unwrap();
        assert_eq!(
            (stamp.positions[0].offset, stamp.time, stamp.index),
            (7, 5, None)
        );
        let frame = d.publication().unwrap().frame(&stamp.positions);
        assert_eq!(SendMsg::decode(frame.payload()).unwrap().server_id, "e:7");
    }
}
