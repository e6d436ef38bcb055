//! The pool view: the presence commands the inspector sends on its own (`client_count`,
//! `all_channels`, then counts and members), and what their replies say.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::{App, Pending};
use crate::connect::compose::{self, Composed};
use crate::connect::model::{FrameRecord, Kind};

/// The pool as the presence commands describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolView {
    /// `client_count`.
    pub clients: Option<u64>,
    /// Channels and their member counts.
    pub channels: BTreeMap<String, Option<u64>>,
    /// The channel looked into.
    pub focus: Option<String>,
    /// Its clients.
    pub members: Vec<String>,
    /// Its uids.
    pub uids: Vec<String>,
    /// A client's info (`/whois`).
    pub info: Option<(String, Value)>,
}

impl App {
    /// Channel sidebar rows: joined channels first, then the rest of the pool's.
    pub fn channel_rows(&self) -> Vec<(String, bool, Option<u64>)> {
        let mut rows: Vec<(String, bool, Option<u64>)> = self
            .joined
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    true,
                    self.pool.channels.get(c).copied().flatten(),
                )
            })
            .collect();
        for (c, n) in &self.pool.channels {
            if !self.joined.contains(c) {
                rows.push((c.clone(), false, *n));
            }
        }
        rows
    }

    /// Frames to send to refresh the pool view (client count, channels; then counts, members).
    pub fn refresh_pool(&mut self) -> Vec<Composed> {
        let mut out = Vec::new();
        out.extend(self.pool_request("client_count", "{}"));
        out.extend(self.pool_request("all_channels", "{}"));
        if let Some(ch) = self.pool.focus.clone() {
            let arg = serde_json::json!({ "channel": ch }).to_string();
            out.extend(self.pool_request("client_ids_by_channel", &arg));
            out.extend(self.pool_request("uids_by_channel", &arg));
        }
        out
    }

    pub(super) fn pool_request(&mut self, cmd: &str, args: &str) -> Option<Composed> {
        let c = compose::parse(&format!("/cmd {cmd} {args}"), &mut self.next_id).ok()?;
        let id = c.request_id.clone()?;
        self.pool_ids.insert(id.clone(), cmd.to_string());
        self.pending.insert(
            id,
            Pending {
                label: format!("pool: {cmd}"),
                sent: Instant::now(),
                timed_out: false,
            },
        );
        Some(c)
    }

    pub(super) fn on_pool_reply(&mut self, kind: &str, r: &FrameRecord) -> Vec<Composed> {
        let d = reply_data(r);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        match kind {
            "client_count" => self.pool.clients = d["count"].as_u64(),
            "all_channels" => {
                let chans = strings(&d["channels"]);
                self.pool.channels = chans.iter().map(|c| (c.clone(), None)).collect();
                for c in chans.iter().take(50) {
                    let arg = serde_json::json!({ "channel": c }).to_string();
                    if let Some(q) = self.pool_request("channel_client_count", &arg) {
                        self.pool_ids.insert(
                            q.request_id.clone().unwrap_or_default(),
                            format!("count:{c}"),
                        );
                        out.push(q);
                    }
                }
            }
            "client_ids_by_channel" => self.pool.members = strings(&d["client_ids"]),
            "uids_by_channel" => self.pool.uids = strings(&d["uids"]),
            "get_info" => {
                if let Some(id) = d["client_id"].as_str() {
                    self.pool.info = Some((id.to_string(), d["info"].clone()));
                }
            }
            k if k.starts_with("count:") => {
                self.pool
                    .channels
                    .insert(k["count:".len()..].to_string(), d["count"].as_u64());
            }
            _ => {}
        }
        out
    }
}

/// The `data` of a reply, whichever form it came in (JSON `data`, or protobuf `msg` as JSON).
pub fn reply_data(r: &FrameRecord) -> Value {
    match r.kind {
        Kind::Binary => r
            .sendmsg()
            .and_then(|m| serde_json::from_str(&m.msg).ok())
            .unwrap_or(Value::Null),
        Kind::Text => serde_json::from_slice::<Value>(&r.data)
            .map(|v| v["data"].clone())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
