//! What bench messages look like on the wire, for each protocol: the header every message
//! carries (publisher, sequence number, intended send time), how a publish is encoded, and how
//! a received frame is recognized.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use wsp_proto::{Message as _, SendMsg};

/// The protocol spoken to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// wsp's own: binary SendMsg frames, channel broadcast, acks by localId.
    Wsp,
    /// websocket-shootout: JSON `{"type":"broadcast"|"echo","payload":…}` (Node `ws`, gorilla peers).
    Shootout,
}

/// The name users type (`--protocol`'s value), as shown in summaries and reports.
impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// `cmd` of bench messages in the wsp protocol (an application command number).
pub const BENCH_CMD: i32 = 1;
/// Bytes of the binary header.
pub const HEADER_LEN: usize = 21;

/// The header of every bench message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Global publisher index.
    pub publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub seq: u64,
    /// Intended send time, ns since the Unix epoch (open-loop schedule).
    pub intended_ns: u64,
    /// Sent inside the measured window.
    pub measured: bool,
}

impl Header {
    fn put(&self, b: &mut BytesMut) {
        b.put_u32(self.publisher);
        b.put_u64(self.seq);
        b.put_u64(self.intended_ns);
        b.put_u8(self.measured as u8);
    }

    fn get(mut b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(Header {
            publisher: b.get_u32(),
            seq: b.get_u64(),
            intended_ns: b.get_u64(),
            measured: b.get_u8() != 0,
        })
    }
}

/// Appends JSON text to `b` until it is `len` bytes long: an array of order-like records whose
/// numbers change with `seed` and the position, so the text compresses like real traffic rather
/// than like one repeated byte. Always valid JSON text on its own (an array of strings padding
/// the end).
fn json_fill(b: &mut BytesMut, len: usize, seed: u64) {
    const WORDS: [&str; 8] = [
        "pending",
        "shipped",
        "delivered",
        "cancelled",
        "alpha",
        "bravo",
        "charlie",
        "delta",
    ];
    let start = b.len();
    let mut body = String::from("[");
    let mut i = 0u64;
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while start + body.len() + 120 < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":{},"user":"u{}","status":"{}","price":{}.{:02},"qty":{},"tag":"{}"}}"#,
            seed * 1000 + i,
            r % 100_000,
            WORDS[r % 8],
            r % 1000,
            r % 100,
            r % 17,
            WORDS[(r >> 8) % 8],
        ));
        i += 1;
    }
    // Pad with one string to the exact length.
    let pad = len.saturating_sub(start + body.len() + 3 + usize::from(i > 0));
    if i > 0 {
        body.push(',');
    }
    body.push('"');
    body.push_str(&"-".repeat(pad));
    body.push_str("\"]");
    b.extend_from_slice(body.as_bytes());
}

/// A received frame, recognized.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A bench message delivered to this client.
    Message(Header),
    /// The server's ack of one of our publishes (carries our header back).
    Ack(Header),
    /// Anything else (welcome frames, pongs...).
    Other,
}

/// What fills a message after its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// One repeated byte: the cheapest to build, and compresses to almost nothing.
    #[default]
    Filler,
    /// JSON records with varying numbers and words: compresses about as real API traffic
    /// does (3–5×), for measuring permessage-deflate honestly.
    Json,
}

/// The name users type (`--payload-kind`'s value), as shown in summaries and reports.
impl std::fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// How publishes are encoded and frames recognized.
#[derive(Debug, Clone)]
pub struct Codec {
    /// Protocol.
    pub protocol: Protocol,
    /// Total payload bytes per message (header included).
    pub payload: usize,
    /// What fills the payload after the header.
    pub kind: PayloadKind,
    /// Channel (wsp).
    pub channel: String,
}

impl Codec {
    /// A broadcast publish. In the wsp protocol the `localId` asks for an ack.
    pub fn broadcast(&self, h: Header) -> Message {
        match self.protocol {
            Protocol::Wsp => {
                let msg = SendMsg {
                    cmd: BENCH_CMD,
                    channel: vec![self.channel.clone()],
                    local_id: ack_id(&h),
                    cmd_data: self.binary_payload(h),
                    ..Default::default()
                };
                Message::binary(msg.encode_to_vec())
            }
            Protocol::Shootout => Message::text(self.shootout("broadcast", h)),
        }
    }

    /// A message to one client (wsp `toClientId`), used by unicast and echo.
    pub fn unicast(&self, to: &str, h: Header) -> Message {
        match self.protocol {
            Protocol::Wsp => {
                let msg = SendMsg {
                    cmd: BENCH_CMD,
                    to_client_id: to.into(),
                    cmd_data: self.binary_payload(h),
                    ..Default::default()
                };
                Message::binary(msg.encode_to_vec())
            }
            Protocol::Shootout => Message::text(self.shootout("echo", h)),
        }
    }

    fn binary_payload(&self, h: Header) -> Bytes {
        let len = self.payload.max(HEADER_LEN);
        let mut b = BytesMut::with_capacity(len);
        h.put(&mut b);
        match self.kind {
            PayloadKind::Filler => b.resize(len, b'x'),
            PayloadKind::Json => json_fill(&mut b, len, h.seq),
        }
        b.freeze()
    }

    fn shootout(&self, kind: &str, h: Header) -> String {
        if self.kind == PayloadKind::Json {
            let mut b = BytesMut::new();
            let head = format!(
                r#"{{"type":"{kind}","payload":{{"p":{},"s":{},"t":{},"m":{},"x":"#,
                h.publisher, h.seq, h.intended_ns, h.measured as u8
            );
            json_fill(&mut b, self.payload.saturating_sub(head.len() + 2), h.seq);
            return format!("{head}{}}}}}", String::from_utf8_lossy(&b));
        }
        let head = format!(
            r#"{{"type":"{kind}","payload":{{"p":{},"s":{},"t":{},"m":{},"x":""#,
            h.publisher, h.seq, h.intended_ns, h.measured as u8
        );
        // Pad the payload object to about `payload` bytes.
        let pad = self.payload.saturating_sub(head.len() - 20 + 4);
        format!("{head}{}\"}}}}", "x".repeat(pad))
    }

    /// Recognizes a received frame.
    pub fn recognize(&self, m: &Message) -> Incoming {
        match (self.protocol, m) {
            (Protocol::Wsp, Message::Binary(b)) => {
                let Ok(msg) = SendMsg::decode(b.as_ref()) else {
                    return Incoming::Other;
                };
                if msg.cmd != BENCH_CMD {
                    return Incoming::Other;
                }
                if msg.cmd_data.is_empty() {
                    // An ack carries our header back in its localId.
                    return parse_ack_id(&msg.local_id).map_or(Incoming::Other, Incoming::Ack);
                }
                Header::get(&msg.cmd_data).map_or(Incoming::Other, Incoming::Message)
            }
            (Protocol::Shootout, Message::Text(t)) => {
                // `type` is borrowed from the frame (no allocation per message); `Cow` still
                // takes a value with escapes, which then cannot be one of ours.
                #[derive(Deserialize)]
                struct Env<'a> {
                    #[serde(rename = "type", borrow)]
                    kind: std::borrow::Cow<'a, str>,
                    payload: Option<P>,
                }
                #[derive(Deserialize)]
                struct P {
                    p: u32,
                    s: u64,
                    t: u64,
                    m: u8,
                }
                let Ok(env) = serde_json::from_str::<Env>(t.as_str()) else {
                    return Incoming::Other;
                };
                let Some(p) = env.payload else {
                    return Incoming::Other;
                };
                let h = Header {
                    publisher: p.p,
                    seq: p.s,
                    intended_ns: p.t,
                    measured: p.m != 0,
                };
                match env.kind.as_ref() {
                    "broadcast" => Incoming::Message(h),
                    "broadcastResult" | "echo" => Incoming::Ack(h),
                    _ => Incoming::Other,
                }
            }
            _ => Incoming::Other,
        }
    }
}

fn ack_id(h: &Header) -> String {
    format!(
        "{}.{}.{}.{}",
        h.publisher, h.seq, h.intended_ns, h.measured as u8
    )
}

fn parse_ack_id(s: &str) -> Option<Header> {
    let mut it = s.split('.');
    let h = Header {
        publisher: it.next()?.parse().ok()?,
        seq: it.next()?.parse().ok()?,
        intended_ns: it.next()?.parse().ok()?,
        measured: it.next()? == "1",
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fill_is_valid_json_of_the_exact_length() {
        for len in [130, 512, 2048, 5000] {
            let mut b = BytesMut::new();
            json_fill(&mut b, len, 7);
            assert_eq!(b.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&b).expect("valid JSON");
            assert!(v.as_array().expect("array").len() > 1);
        }
        let c = Codec {
            kind: PayloadKind::Json,
            payload: 2048,
            ..codec(Protocol::Shootout)
        };
        let Message::Text(t) = c.broadcast(Header {
            publisher: 1,
            seq: 2,
            intended_ns: 3,
            measured: true,
        }) else {
            panic!("text")
        };
        let v: serde_json::Value = serde_json::from_str(&t).expect("valid JSON");
        assert_eq!(v["payload"]["s"], 2);
        assert!(t.len().abs_diff(2048) < 40, "{}", t.len());
    }

    fn codec(protocol: Protocol) -> Codec {
        Codec {
            protocol,
            payload: 64,
            kind: PayloadKind::Filler,
            channel: "bench".into(),
        }
    }

    #[test]
    fn wsp_round_trip_and_payload_size() {
        let c = codec(Protocol::Wsp);
        let h = Header {
            publisher: 3,
            seq: 9,
            intended_ns: 123,
            measured: true,
        };
        let m = c.broadcast(h);
        let msg = SendMsg::decode(m.clone().into_data().as_ref()).unwrap();
        assert_eq!(msg.cmd_data.len(), 64);
        assert_eq!(c.recognize(&m), Incoming::Message(h));
        let ack = SendMsg {
            cmd: BENCH_CMD,
            local_id: ack_id(&h),
            ..Default::default()
        };
        assert_eq!(
            c.recognize(&Message::binary(ack.encode_to_vec())),
            Incoming::Ack(h)
        );
    }

    #[test]
    fn shootout_round_trip() {
        let c = codec(Protocol::Shootout);
        let h = Header {
            publisher: 1,
            seq: 2,
            intended_ns: 3,
            measured: false,
        };
        let m = c.broadcast(h);
        assert_eq!(c.recognize(&m), Incoming::Message(h));
        let text = m.into_text().unwrap();
        let echoed = text
            .as_str()
            .replace("\"broadcast\"", "\"broadcastResult\"");
        assert_eq!(c.recognize(&Message::text(echoed)), Incoming::Ack(h));
    }
}
