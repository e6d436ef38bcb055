//! The inspector's state and what keys and session events do to it. Drawing is in `ui.rs`,
//! the loop in `tui.rs`; this file knows neither the terminal nor the socket.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;

use super::compose::{self, Composed};
use super::decode::Decoder;
use super::model::{Dir, FrameRecord, Kind};
use super::session::Event;

/// Frames kept; older ones are dropped (the `--record` file keeps everything).
pub const MAX_FRAMES: usize = 20_000;
/// A request with no reply after this long is shown as timed out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The composer.
    Input,
    /// The frame list.
    List,
    /// The filter line.
    Filter,
    /// The channel sidebar.
    Channels,
}

/// Connection state as shown in the status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    /// Connecting (attempt).
    Connecting(u32),
    /// Connected.
    Connected,
    /// Disconnected, with why, and when the next attempt is.
    Disconnected(String, Option<Instant>),
    /// Over.
    Ended,
}

/// One frame in the list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The frame.
    pub record: FrameRecord,
    /// For a reply: the round trip of its request.
    pub rtt: Option<Duration>,
}

/// A request waiting for its reply.
#[derive(Debug, Clone)]
pub struct Pending {
    /// What it was.
    pub label: String,
    /// When it left.
    pub sent: Instant,
    /// Past [`REQUEST_TIMEOUT`].
    pub timed_out: bool,
}

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

/// What the loop must do after a key.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Nothing.
    None,
    /// Send these frames.
    Send(Vec<Composed>),
    /// Quit.
    Quit,
}

/// The inspector.
pub struct App {
    /// The URL, for the status bar.
    pub url: String,
    /// Frames, oldest first.
    pub frames: VecDeque<Entry>,
    /// Frames dropped off the front.
    pub dropped: u64,
    /// Selected frame (index into `frames`) when not following.
    pub selected: Option<usize>,
    /// Follow new frames.
    pub follow: bool,
    /// Keyboard focus.
    pub focus: Focus,
    /// Composer text.
    pub input: String,
    /// Sent inputs, oldest first.
    pub history: Vec<String>,
    history_pos: Option<usize>,
    /// Filter text.
    pub filter: String,
    /// Requests by id.
    pub pending: HashMap<String, Pending>,
    /// Connection state.
    pub conn: Conn,
    /// Our client id (from the welcome frame).
    pub client_id: Option<String>,
    /// The subprotocol the server selected.
    pub subprotocol: Option<String>,
    /// The permessage-deflate parameters, when compression was negotiated.
    pub compression: Option<String>,
    /// Latest ping round trip.
    pub ping_rtt: Option<Duration>,
    /// Channels we are in.
    pub joined: BTreeSet<String>,
    /// Selected row of the channel sidebar.
    pub channel_sel: usize,
    /// The pool view.
    pub pool: PoolView,
    /// Last message for the user (errors, hints).
    pub notice: String,
    /// Help overlay.
    pub show_help: bool,
    /// What the last reconnect's rejoins answered, per channel (`--reconnect`).
    pub recovery: Vec<super::recover::Outcome>,
    /// Decoder for the detail pane.
    pub decoder: Decoder,
    next_id: u64,
    pool_ids: HashMap<String, String>,
}

impl App {
    /// A fresh inspector for `url`.
    pub fn new(url: String, decoder: Decoder) -> Self {
        Self {
            url,
            frames: VecDeque::new(),
            dropped: 0,
            selected: None,
            follow: true,
            focus: Focus::Input,
            input: String::new(),
            history: Vec::new(),
            history_pos: None,
            filter: String::new(),
            pending: HashMap::new(),
            conn: Conn::Connecting(1),
            client_id: None,
            subprotocol: None,
            compression: None,
            ping_rtt: None,
            joined: BTreeSet::new(),
            channel_sel: 0,
            pool: PoolView::default(),
            notice: String::new(),
            recovery: Vec::new(),
            show_help: false,
            decoder,
            next_id: 0,
            pool_ids: HashMap::new(),
        }
    }

    /// Indexes of the frames the filter lets through.
    pub fn visible(&self) -> Vec<usize> {
        let f = Filter::parse(&self.filter);
        (0..self.frames.len())
            .filter(|&i| f.matches(&self.frames[i].record))
            .collect()
    }

    /// The frame the detail pane shows.
    pub fn current(&self) -> Option<&Entry> {
        let vis = self.visible();
        let idx = match (self.follow, self.selected) {
            (false, Some(s)) => vis
                .iter()
                .copied()
                .find(|&i| i == s)
                .or(vis.last().copied()),
            _ => vis.last().copied(),
        }?;
        self.frames.get(idx)
    }

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

    /// Applies a session event.
    pub fn on_event(&mut self, e: Event) -> Action {
        match e {
            Event::Connecting(n) => self.conn = Conn::Connecting(n),
            Event::Connected(p) => {
                self.conn = Conn::Connected;
                self.recovery.clear();
                self.subprotocol = p.subprotocol;
                self.compression = p.compression;
                self.notice.clear();
            }
            Event::PingRtt(d) => self.ping_rtt = Some(d),
            Event::Disconnected(why, next) => {
                self.conn = Conn::Disconnected(why.clone(), next.map(|d| Instant::now() + d));
                self.notice = why;
            }
            Event::Ended => self.conn = Conn::Ended,
            Event::Recovery(o) => self.recovery.push(o),
            Event::Frame(r) => return self.on_frame(r),
        }
        Action::None
    }

    fn on_frame(&mut self, r: FrameRecord) -> Action {
        let mut rtt = None;
        let mut follow_up = Vec::new();
        if r.dir == Dir::In {
            if let Some(id) = &r.summary.request_id {
                if let Some(p) = self.pending.remove(id) {
                    rtt = Some(p.sent.elapsed());
                }
                if let Some(kind) = self.pool_ids.remove(id) {
                    follow_up = self.on_pool_reply(&kind, &r);
                }
            }
            self.learn(&r);
        }
        self.frames.push_back(Entry { record: r, rtt });
        if self.frames.len() > MAX_FRAMES {
            self.frames.pop_front();
            self.dropped += 1;
            self.selected = self.selected.and_then(|s| s.checked_sub(1));
        }
        if follow_up.is_empty() {
            Action::None
        } else {
            Action::Send(follow_up)
        }
    }

    /// Updates what we know from welcome frames and join/leave replies.
    fn learn(&mut self, r: &FrameRecord) {
        if r.summary.from.is_some() {
            // Another client's frame, whatever its `cmd`: not the server's welcome or reply.
            return;
        }
        let (cmd, status) = (r.summary.cmd.as_deref(), r.summary.status.unwrap_or(0));
        let data = reply_data(r);
        match cmd {
            Some("welcome") => {
                self.client_id = data["client_id"]
                    .as_str()
                    .map(str::to_string)
                    .or(r.summary.to.clone());
                if let Some(chs) = data["channels"].as_array() {
                    self.joined
                        .extend(chs.iter().filter_map(|c| c.as_str().map(str::to_string)));
                }
            }
            Some("join") if status == 0 => {
                if let Some(c) = data["channel"].as_str() {
                    self.joined.insert(c.into());
                }
            }
            Some("leave") if status == 0 => {
                if let Some(c) = data["channel"].as_str() {
                    self.joined.remove(c);
                }
            }
            _ => {}
        }
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

    fn pool_request(&mut self, cmd: &str, args: &str) -> Option<Composed> {
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

    fn on_pool_reply(&mut self, kind: &str, r: &FrameRecord) -> Vec<Composed> {
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

    /// Marks requests past the timeout.
    pub fn tick(&mut self) {
        for p in self.pending.values_mut() {
            if !p.timed_out && p.sent.elapsed() > REQUEST_TIMEOUT {
                p.timed_out = true;
            }
        }
    }

    /// Records that `c` was handed to the session.
    pub fn sent(&mut self, c: &Composed) {
        if let Some(id) = &c.request_id {
            self.pending.insert(
                id.clone(),
                Pending {
                    label: c.label.clone(),
                    sent: Instant::now(),
                    timed_out: false,
                },
            );
        }
    }

    /// Parses composer input into frames (with local commands such as `/help`, `/pool`).
    pub fn submit(&mut self, line: &str) -> Action {
        let line = line.trim().to_string();
        if line.is_empty() {
            return Action::None;
        }
        self.history.push(line.clone());
        self.history_pos = None;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("/help") => {
                self.show_help = !self.show_help;
                return Action::None;
            }
            Some("/quit") => return Action::Quit,
            Some("/pool") => {
                self.pool.focus = words.next().map(str::to_string).or(self.pool.focus.clone());
                return Action::Send(self.refresh_pool());
            }
            Some("/whois") => {
                let Some(id) = words.next() else {
                    self.notice = "/whois needs a client id".into();
                    return Action::None;
                };
                let arg = serde_json::json!({ "client_id": id }).to_string();
                return Action::Send(self.pool_request("get_info", &arg).into_iter().collect());
            }
            Some("/filter") => {
                self.filter = line["/filter".len()..].trim().to_string();
                return Action::None;
            }
            _ => {}
        }
        match compose::parse(&line, &mut self.next_id) {
            Ok(c) => Action::Send(vec![c]),
            Err(e) => {
                self.notice = e;
                Action::None
            }
        }
    }

    /// Handles a key.
    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match (ctrl, k.code) {
            (true, KeyCode::Char('c')) | (true, KeyCode::Char('q')) => return Action::Quit,
            (true, KeyCode::Char('t')) => {
                self.toggle_follow();
                return Action::None;
            }
            (true, KeyCode::Char('f')) => {
                self.focus = Focus::Filter;
                return Action::None;
            }
            (true, KeyCode::Char('r')) => return Action::Send(self.refresh_pool()),
            (_, KeyCode::F(1)) => {
                self.show_help = !self.show_help;
                return Action::None;
            }
            (_, KeyCode::Tab) => {
                self.focus = match self.focus {
                    Focus::Input => Focus::List,
                    Focus::List => Focus::Channels,
                    _ => Focus::Input,
                };
                return Action::None;
            }
            (_, KeyCode::Esc) => {
                if self.focus == Focus::Filter {
                    self.filter.clear();
                }
                self.show_help = false;
                self.focus = Focus::Input;
                return Action::None;
            }
            _ => {}
        }
        match self.focus {
            Focus::Input => self.input_key(k),
            Focus::Filter => {
                match k.code {
                    KeyCode::Enter => self.focus = Focus::List,
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) => self.filter.push(c),
                    _ => {}
                }
                Action::None
            }
            Focus::List => {
                self.list_key(k.code);
                Action::None
            }
            Focus::Channels => self.channel_key(k.code),
        }
    }

    fn toggle_follow(&mut self) {
        self.follow = !self.follow;
        if !self.follow {
            self.selected = self.visible().last().copied();
        }
    }

    fn input_key(&mut self, k: KeyEvent) -> Action {
        match k.code {
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input);
                return self.submit(&line);
            }
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Up if !self.history.is_empty() => {
                let pos = self
                    .history_pos
                    .map_or(self.history.len() - 1, |p| p.saturating_sub(1));
                self.history_pos = Some(pos);
                self.input = self.history[pos].clone();
            }
            KeyCode::Down => {
                if let Some(p) = self.history_pos {
                    if p + 1 < self.history.len() {
                        self.history_pos = Some(p + 1);
                        self.input = self.history[p + 1].clone();
                    } else {
                        self.history_pos = None;
                        self.input.clear();
                    }
                }
            }
            KeyCode::Char(c) => self.input.push(c),
            _ => {}
        }
        Action::None
    }

    fn list_key(&mut self, code: KeyCode) {
        let vis = self.visible();
        if vis.is_empty() {
            return;
        }
        let pos = self
            .selected
            .and_then(|s| vis.iter().position(|&i| i == s))
            .unwrap_or(vis.len() - 1);
        let new = match code {
            KeyCode::Up | KeyCode::Char('k') => pos.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => (pos + 1).min(vis.len() - 1),
            KeyCode::PageUp => pos.saturating_sub(20),
            KeyCode::PageDown => (pos + 20).min(vis.len() - 1),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => vis.len() - 1,
            KeyCode::Char('f') => {
                self.toggle_follow();
                return;
            }
            _ => return,
        };
        self.follow = false;
        self.selected = Some(vis[new]);
    }

    fn channel_key(&mut self, code: KeyCode) -> Action {
        let rows = self.channel_rows();
        if rows.is_empty() {
            return Action::None;
        }
        self.channel_sel = self.channel_sel.min(rows.len() - 1);
        let (name, joined, _) = rows[self.channel_sel].clone();
        match code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.channel_sel = self.channel_sel.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.channel_sel = (self.channel_sel + 1).min(rows.len() - 1)
            }
            KeyCode::Char('J') | KeyCode::Char('+') if !joined => {
                return self.submit(&format!("/join {name}"))
            }
            KeyCode::Char('L') | KeyCode::Char('-') if joined => {
                return self.submit(&format!("/leave {name}"))
            }
            KeyCode::Enter => return self.submit(&format!("/pool {name}")),
            _ => {}
        }
        Action::None
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

/// The filter: `cmd:X ch:X dir:in|out status:N type:text|binary|…` and free words.
#[derive(Debug, Default)]
pub struct Filter {
    cmd: Option<String>,
    channel: Option<String>,
    dir: Option<Dir>,
    status: Option<i64>,
    kind: Option<String>,
    words: Vec<String>,
}

impl Filter {
    /// Parses filter text; unknown `key:` prefixes are free words.
    pub fn parse(s: &str) -> Self {
        let mut f = Filter::default();
        for w in s.split_whitespace() {
            match w.split_once(':') {
                Some(("cmd", v)) => f.cmd = Some(v.to_string()),
                Some(("ch", v)) | Some(("channel", v)) => f.channel = Some(v.to_string()),
                Some(("dir", "in")) => f.dir = Some(Dir::In),
                Some(("dir", "out")) => f.dir = Some(Dir::Out),
                Some(("status", v)) if v.parse::<i64>().is_ok() => f.status = v.parse().ok(),
                Some(("type", v)) => f.kind = Some(v.to_string()),
                _ => f.words.push(w.to_lowercase()),
            }
        }
        f
    }

    /// Does the frame pass?
    pub fn matches(&self, r: &FrameRecord) -> bool {
        let s = &r.summary;
        if self
            .cmd
            .as_ref()
            .is_some_and(|c| s.cmd.as_deref() != Some(c.as_str()))
        {
            return false;
        }
        if self
            .channel
            .as_ref()
            .is_some_and(|c| !s.channels.iter().any(|x| x == c))
        {
            return false;
        }
        if self.dir.is_some_and(|d| d != r.dir) {
            return false;
        }
        if self.status.is_some_and(|st| s.status != Some(st)) {
            return false;
        }
        if self.kind.as_ref().is_some_and(|k| k != r.kind.name()) {
            return false;
        }
        if self.words.is_empty() {
            return true;
        }
        let mut hay = String::from_utf8_lossy(&r.data).to_lowercase();
        for part in [&s.cmd, &s.from, &s.to].into_iter().flatten() {
            hay.push(' ');
            hay.push_str(&part.to_lowercase());
        }
        self.words.iter().all(|w| hay.contains(w.as_str()))
    }
}
