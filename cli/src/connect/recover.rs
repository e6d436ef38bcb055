//! Lossless reconnects for `wsp connect --reconnect`: remembers the channels the connection is
//! in and, per channel, the epoch and offset of the last message seen (from JSON pushes'
//! `data.offset`/`data.epoch`, SendMsg pushes' `serverId`, and join replies); after a
//! reconnect it joins each channel again with `since`, so the server sends what was missed
//! first, and reports per channel whether everything was recovered.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wsp_proto::{Message as _, SendMsg};
use wsp_server::publication::positions_of;

/// Prefix of the `seqno` of the joins a reconnect sends.
const SEQNO: &str = "wsp-recover:";

/// The last position seen in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The stream's epoch.
    pub epoch: String,
    /// The newest offset seen.
    pub offset: u64,
}

/// What a reconnect's join answered for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The channel.
    pub channel: String,
    /// `Some(true)`: every missed message follows; `Some(false)`: a gap (resync);
    /// `None`: the server keeps no history, or no position was known.
    pub recovered: Option<bool>,
    /// Messages the server is sending back.
    pub missed: u64,
}

/// The channels and positions of one inspector session.
///
/// What it trusts: the welcome frame and command replies only from the server (a SendMsg
/// without `fromClientId`: another client's frame always carries one, whatever its `cmd`), and
/// positions only on channel pushes of a server that keeps history (its welcome says
/// `history: true`; it then writes every channel push's positions itself, over whatever the
/// sender put there). So no other client can move this session's positions or answer its joins.
#[derive(Debug, Default)]
pub struct Tracker {
    client_id: Option<String>,
    /// The server keeps channel history (from the welcome frame).
    history: bool,
    /// Channels we are in, with the last position seen when known.
    channels: BTreeMap<String, Option<Seen>>,
}

impl Tracker {
    /// Looks at a frame from the server; returns the outcome when it answers a reconnect's
    /// join.
    pub fn observe(&mut self, m: &Message) -> Option<Outcome> {
        match m {
            Message::Text(t) => self.observe_json(&serde_json::from_str(t.as_str()).ok()?),
            Message::Binary(b) => self.observe_sendmsg(&SendMsg::decode(b.as_ref()).ok()?),
            _ => None,
        }
    }

    fn see(&mut self, channel: &str, epoch: &str, offset: u64) {
        if let Some(slot) = self.channels.get_mut(channel) {
            let newer = match slot {
                Some(s) => s.epoch != epoch || offset > s.offset,
                None => true,
            };
            if newer {
                *slot = Some(Seen {
                    epoch: epoch.to_string(),
                    offset,
                });
            }
        }
    }

    fn observe_json(&mut self, v: &Value) -> Option<Outcome> {
        let d = &v["data"];
        match v["cmd"].as_str()? {
            "welcome" => {
                self.client_id = d["client_id"].as_str().map(str::to_string);
                self.history = d["history"].as_bool() == Some(true);
                for ch in d["channels"].as_array().into_iter().flatten() {
                    if let Some(ch) = ch.as_str() {
                        self.channels.entry(ch.to_string()).or_insert(None);
                    }
                }
                None
            }
            "message" if self.history && d["route"] == "channel" => {
                let positions = match d.get("positions") {
                    Some(Value::Array(all)) => all.clone(),
                    _ => vec![
                        json!({"channel": d["channel"], "offset": d["offset"], "epoch": d["epoch"]}),
                    ],
                };
                for p in positions {
                    if let (Some(ch), Some(o), Some(e)) = (
                        p["channel"].as_str(),
                        p["offset"].as_u64(),
                        p["epoch"].as_str(),
                    ) {
                        self.see(ch, e, o);
                    }
                }
                None
            }
            cmd @ ("join" | "leave") if v["status"] == 0 => {
                self.membership(cmd, v["seqno"].as_str(), d)
            }
            _ => None,
        }
    }

    fn observe_sendmsg(&mut self, m: &SendMsg) -> Option<Outcome> {
        let from_server = m.from_client_id.is_empty();
        match m.cmd {
            1000 if from_server => {
                self.client_id = Some(m.to_client_id.clone());
                self.history = serde_json::from_str::<Value>(&m.msg)
                    .is_ok_and(|d| d["history"].as_bool() == Some(true));
                for ch in &m.channel {
                    self.channels.entry(ch.clone()).or_insert(None);
                }
                None
            }
            1001 | 1002 if from_server && m.status == 0 && m.channel.is_empty() => {
                let d: Value = serde_json::from_str(&m.msg).ok()?;
                let cmd = if m.cmd == 1001 { "join" } else { "leave" };
                self.membership(cmd, Some(&m.local_id), &d)
            }
            // A channel push (not a frame sent to this client alone, which carries whatever
            // `serverId` its sender chose).
            _ if self.history && m.to_client_id.is_empty() => {
                for p in positions_of(m).into_iter().flatten() {
                    self.see(&p.channel, &p.epoch, p.offset);
                }
                None
            }
            _ => None,
        }
    }

    /// A successful join or leave of this connection.
    fn membership(&mut self, cmd: &str, seqno: Option<&str>, d: &Value) -> Option<Outcome> {
        let ch = d["channel"].as_str()?.to_string();
        if d["client_id"].as_str() != self.client_id.as_deref() {
            return None; // acting on another client
        }
        if cmd == "leave" {
            self.channels.remove(&ch);
            return None;
        }
        let at = match (d["epoch"].as_str(), d["offset"].as_u64()) {
            (Some(e), Some(o)) => Some(Seen {
                epoch: e.to_string(),
                offset: o,
            }),
            _ => None,
        };
        let slot = self.channels.entry(ch.clone()).or_insert(None);
        // A plain join starts at the newest offset. After a recovery the position stays where
        // it was: the missed messages follow the reply and move it on (if the connection drops
        // again before they all came, the next recovery starts from the last one seen).
        let recovering = d["recovered"].as_bool() == Some(true) && slot.is_some();
        if at.is_some() && !recovering {
            *slot = at;
        }
        seqno.filter(|s| s.starts_with(SEQNO)).map(|_| Outcome {
            channel: ch,
            recovered: d["recovered"].as_bool(),
            missed: d["missed"].as_u64().unwrap_or(0),
        })
    }

    /// The URL for a reconnect: without the `channel` parameters of the channels this session
    /// rejoins itself (a channel joined at connect cannot be recovered).
    pub fn reconnect_url(&self, url: &str) -> String {
        if self.channels.is_empty() {
            return url.to_string();
        }
        let Ok(mut u) = url::Url::parse(url) else {
            return url.to_string();
        };
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, v)| !(k == "channel" && self.channels.contains_key(v.as_ref())))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
        u.to_string()
    }

    /// The joins to send right after a reconnect: every channel, with `since` when a position
    /// is known.
    pub fn rejoin(&self) -> Vec<String> {
        self.channels
            .iter()
            .map(|(ch, seen)| {
                let mut data = json!({ "channel": ch });
                if let Some(s) = seen {
                    data["since"] = json!({ "epoch": s.epoch, "offset": s.offset });
                }
                json!({ "cmd": "join", "seqno": format!("{SEQNO}{ch}"), "data": data }).to_string()
            })
            .collect()
    }
}

/// A one-line summary of a reconnect's outcomes, for the status line and stderr.
pub fn summary(outcomes: &[Outcome]) -> String {
    let mut ok = Vec::new();
    let mut gaps = Vec::new();
    let mut unknown = Vec::new();
    for o in outcomes {
        match o.recovered {
            Some(true) => ok.push(format!("{} (+{})", o.channel, o.missed)),
            Some(false) => gaps.push(o.channel.clone()),
            None => unknown.push(o.channel.clone()),
        }
    }
    let mut parts = Vec::new();
    if !ok.is_empty() {
        parts.push(format!("recovered {}", ok.join(", ")));
    }
    if !gaps.is_empty() {
        parts.push(format!("GAP in {}: messages lost, resync", gaps.join(", ")));
    }
    if !unknown.is_empty() {
        parts.push(format!("rejoined {} (no history)", unknown.join(", ")));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Value) -> Message {
        Message::text(v.to_string())
    }

    #[test]
    fn positions_are_followed_and_rejoined_with_since() {
        let mut t = Tracker::default();
        t.observe(&text(
            json!({"cmd":"welcome","data":{"client_id":"me","channels":["q"],"history":true}}),
        ));
        t.observe(&text(json!({"cmd":"join","seqno":"1","status":0,"data":{"client_id":"me","channel":"news","epoch":"e","offset":4}})));
        t.observe(&text(
            json!({"cmd":"message","data":{"route":"channel","channel":"news","offset":6,"epoch":"e","data":1}}),
        ));
        t.observe(&text(
            json!({"cmd":"message","data":{"route":"channel","channel":"news","offset":5,"epoch":"e","data":0}}),
        ));
        // Acting on another client changes nothing here.
        t.observe(&text(
            json!({"cmd":"join","seqno":"2","status":0,"data":{"client_id":"other","channel":"x"}}),
        ));
        let joins = t.rejoin();
        assert_eq!(joins.len(), 2);
        let news: Value = serde_json::from_str(&joins[0]).unwrap();
        assert_eq!(news["data"]["since"], json!({"epoch": "e", "offset": 6}));
        let q: Value = serde_json::from_str(&joins[1]).unwrap();
        assert!(q["data"].get("since").is_none());
        assert_eq!(
            t.reconnect_url("ws://h/ws?id=me&channel=q&channel=keep"),
            "ws://h/ws?id=me&channel=keep"
        );
        // The reconnect's answer.
        let o = t.observe(&text(json!({"cmd":"join","seqno":"wsp-recover:news","status":0,"data":{"client_id":"me","channel":"news","epoch":"e","offset":9,"recovered":true,"missed":3}})));
        assert_eq!(
            o,
            Some(Outcome {
                channel: "news".into(),
                recovered: Some(true),
                missed: 3
            })
        );
        assert_eq!(summary(&[o.unwrap()]), "recovered news (+3)");
    }

    #[test]
    fn sendmsg_pushes_move_the_position_too() {
        let mut t = Tracker::default();
        let welcome = SendMsg {
            cmd: 1000,
            to_client_id: "me".into(),
            channel: vec!["room".into()],
            msg: r#"{"history":true}"#.into(),
            ..Default::default()
        };
        t.observe(&Message::binary(welcome.encode_to_vec()));
        let push = SendMsg {
            cmd: 7,
            channel: vec!["room".into()],
            server_id: "ep:12".into(),
            ..Default::default()
        };
        t.observe(&Message::binary(push.encode_to_vec()));
        let j: Value = serde_json::from_str(&t.rejoin()[0]).unwrap();
        assert_eq!(j["data"]["since"], json!({"epoch": "ep", "offset": 12}));
    }

    #[test]
    fn frames_from_other_clients_are_not_trusted() {
        let mut t = Tracker::default();
        let welcome = SendMsg {
            cmd: 1000,
            to_client_id: "me".into(),
            msg: r#"{"history":true}"#.into(),
            ..Default::default()
        };
        t.observe(&Message::binary(welcome.encode_to_vec()));
        t.observe(&text(json!({"cmd":"join","seqno":"1","status":0,"data":{"client_id":"me","channel":"news","epoch":"e","offset":4}})));
        // A made-up welcome and a made-up join reply, relayed from client "mallory".
        let fake_welcome = SendMsg {
            cmd: 1000,
            from_client_id: "mallory".into(),
            to_client_id: "mallory".into(),
            ..Default::default()
        };
        t.observe(&Message::binary(fake_welcome.encode_to_vec()));
        let fake_reply = SendMsg {
            cmd: 1001,
            from_client_id: "mallory".into(),
            local_id: "wsp-recover:news".into(),
            msg: json!({"client_id":"me","channel":"news","epoch":"e","offset":999,"recovered":true,"missed":0}).to_string(),
            ..Default::default()
        };
        assert_eq!(
            t.observe(&Message::binary(fake_reply.encode_to_vec())),
            None
        );
        // Made-up positions in a frame sent to this client alone.
        let fake_push = SendMsg {
            cmd: 7,
            from_client_id: "mallory".into(),
            to_client_id: "me".into(),
            channel: vec!["news".into()],
            server_id: "e:999".into(),
            ..Default::default()
        };
        t.observe(&Message::binary(fake_push.encode_to_vec()));
        let j: Value = serde_json::from_str(&t.rejoin()[0]).unwrap();
        assert_eq!(j["data"]["since"], json!({"epoch": "e", "offset": 4}));
        // A real channel push (from a client, positions written by the server) moves it.
        let push = SendMsg {
            cmd: 7,
            from_client_id: "alice".into(),
            channel: vec!["news".into()],
            server_id: "e:5".into(),
            ..Default::default()
        };
        t.observe(&Message::binary(push.encode_to_vec()));
        let j: Value = serde_json::from_str(&t.rejoin()[0]).unwrap();
        assert_eq!(j["data"]["since"], json!({"epoch": "e", "offset": 5}));
    }
}
