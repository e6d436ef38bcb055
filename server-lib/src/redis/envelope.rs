//! What travels between nodes over Redis pub/sub: a JSON header line, then the frame's raw
//! bytes (never re-encoded, never base64).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::close::Close;
use crate::frame::{Frame, Kind};
use crate::presence::{Delivery, PresenceEvent, Route};

/// What a message asks the receiving node to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Body {
    /// Deliver a text frame (payload: the text).
    Text,
    /// Deliver a binary frame (payload: the bytes).
    Binary,
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

/// Decodes a message: the header and, for frames, the delivery.
pub fn decode(bytes: &Bytes) -> Result<(Header, Option<Delivery>), String> {
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
        let (h, back) = decode(&wire).unwrap();
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
        let (h, d) = decode(&encode(&ev, b"")).unwrap();
        assert_eq!(h, ev);
        assert!(d.is_none());
    }
}
