//! The inspector's state and what keys and session events do to it. Drawing is in `ui.rs`,
//! the loop in `tui.rs`; this file knows neither the terminal nor the socket.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

mod keys;
mod pool;

use super::compose::{self, Composed};
use super::decode::Decoder;
pub use super::filter::Filter;
use super::model::{Dir, FrameRecord};
use super::session::Event;
pub use pool::{reply_data, PoolView};

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
        // A new line replaces the last one's error: it says only what this line did.
        self.notice.clear();
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
}
