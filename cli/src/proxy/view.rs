//! The proxy UI's state and what keys and the relay's events do to it; drawing and the loop are
//! in `tui`. Whatever a key asks the proxy to do comes out as one `control` line (the same a
//! user could type), so the UI and stdin have one path.
//!
//! Keys, as in `wsp connect`: Tab moves the focus composer → connections → frames; Ctrl-F edits
//! the frame filter (its syntax), Ctrl-T follows or pauses; Esc goes back to the composer (and
//! from the composer quits), Ctrl-C quits. Connections: ↑↓ pick, `i` holds every message of
//! the connection (again: stops), `x` closes it (the composer asks for the code). Frames: ↑↓
//! PgUp PgDn g G pick, `f` follows; on a held message `a` forwards it, `e` edits it (the
//! composer gets `/edit K` and the message), `d` drops it; `A` forwards every held message.
//! In the composer ←→ Home End move the cursor, ↑↓ still pick a connection and PgUp/PgDn a
//! frame.

use std::collections::{BTreeMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent};
use serde_json::Value;

use super::log::{Event, Mark};
use crate::connect::compose::{self, Outgoing};
use crate::connect::filter::Filter;
use crate::connect::keymap::{self, Global};
use crate::connect::model::{FrameRecord, Kind};

/// Connections kept (the newest).
pub const MAX_CONNS: usize = 500;
/// Frames kept per connection (the newest).
pub const MAX_FRAMES: usize = 2000;

/// A frame as the UI keeps it.
pub struct Shown {
    /// The frame (`dir` `Out`: to the upstream).
    pub record: FrameRecord,
    /// How it came to be shown.
    pub mark: Mark,
    /// For a held message: what became of it (`forwarded`, `edited`, `dropped`), once decided.
    pub released: Option<String>,
}

impl Shown {
    /// The hold number of a message still held.
    pub fn held(&self) -> Option<u64> {
        match self.mark {
            Mark::Held(k) if self.released.is_none() => Some(k),
            _ => None,
        }
    }
}

/// One client connection.
pub struct Conn {
    /// The proxy's number.
    pub id: u64,
    /// Client address.
    pub peer: String,
    /// Path and query.
    pub path: String,
    /// How it ended (or was refused), once it has.
    pub closed: Option<String>,
    /// The client's id, when the URL (`id=`) or the upstream's welcome names one.
    pub client_id: Option<String>,
    /// Frames to the upstream.
    pub up: u64,
    /// Frames to the client.
    pub down: u64,
    /// Payload bytes to the upstream.
    pub up_bytes: u64,
    /// Payload bytes to the client.
    pub down_bytes: u64,
    /// The newest frames.
    pub frames: VecDeque<Shown>,
    /// Frames dropped from the front: `frames[i]` is frame number `base + i`.
    pub base: u64,
}

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The composer.
    Input,
    /// The connection list.
    Conns,
    /// The frame list.
    Frames,
    /// The filter line.
    Filter,
}

/// What the loop must do after a key.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Nothing.
    None,
    /// Carry out this `control` line.
    Run(String),
    /// Turn holding every message of this connection on or off.
    ToggleIntercept(u64),
    /// Quit.
    Quit,
}

/// The UI's state.
pub struct View {
    /// The newest connections.
    pub conns: VecDeque<Conn>,
    /// Index of the selected connection.
    pub selected: usize,
    /// Which pane has the keyboard.
    pub focus: Focus,
    /// Show the newest frame (else `frame`).
    pub follow: bool,
    /// The selected frame's number when not following.
    pub frame: Option<u64>,
    /// The filter text.
    pub filter: String,
    /// The composer's text.
    pub input: String,
    /// The composer's cursor: a byte index into `input`, on a character boundary.
    pub cursor: usize,
    /// The last command's outcome.
    pub notice: String,
    /// Messages held now: hold number → connection.
    pub held: BTreeMap<u64, u64>,
}

impl Default for View {
    fn default() -> Self {
        Self {
            conns: VecDeque::new(),
            selected: 0,
            focus: Focus::Input,
            follow: true,
            frame: None,
            filter: String::new(),
            input: String::new(),
            cursor: 0,
            notice: String::new(),
            held: BTreeMap::new(),
        }
    }
}

impl View {
    /// Takes in what the relay reported.
    pub fn apply(&mut self, e: Event) {
        match e {
            Event::Frame { conn, record, mark } => {
                let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) else {
                    return;
                };
                let bytes = record.data.len() as u64;
                if record.dir == crate::connect::model::Dir::Out {
                    c.up += 1;
                    c.up_bytes += bytes;
                } else {
                    c.down += 1;
                    c.down_bytes += bytes;
                    if c.client_id.is_none() && record.summary.cmd.as_deref() == Some("welcome") {
                        c.client_id.clone_from(&record.summary.to);
                    }
                }
                if c.frames.len() == MAX_FRAMES {
                    if let Some(old) = c.frames.pop_front() {
                        if let Some(k) = old.held() {
                            self.held.remove(&k);
                        }
                    }
                    c.base += 1;
                }
                if let Mark::Held(k) = mark {
                    self.held.insert(k, conn);
                }
                c.frames.push_back(Shown {
                    record: *record,
                    mark,
                    released: None,
                });
            }
            Event::Line(v) => self.event(&v),
        }
    }

    fn event(&mut self, v: &Value) {
        let Some(id) = v["conn"].as_u64() else { return };
        match v["event"].as_str() {
            Some("open") | Some("refused") if !self.conns.iter().any(|c| c.id == id) => {
                if self.conns.len() == MAX_CONNS {
                    self.conns.pop_front();
                    self.selected = self.selected.saturating_sub(1);
                }
                let path = v["path"].as_str().unwrap_or("");
                self.conns.push_back(Conn {
                    id,
                    peer: v["peer"].as_str().unwrap_or("").into(),
                    client_id: id_in(path),
                    path: path.into(),
                    closed: (v["event"] == "refused").then(|| format!("refused {}", v["status"])),
                    up: 0,
                    down: 0,
                    up_bytes: 0,
                    down_bytes: 0,
                    frames: VecDeque::new(),
                    base: 0,
                });
            }
            Some("closed") => {
                self.held.retain(|_, c| *c != id);
                if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                    c.closed = Some(match v["code"].as_u64() {
                        Some(code) => {
                            format!("closed {code} by {}", v["by"].as_str().unwrap_or("?"))
                        }
                        None => format!("ended: {}", v["error"].as_str().unwrap_or("")),
                    });
                    for f in c.frames.iter_mut().filter(|f| f.held().is_some()) {
                        f.released = Some("lost".into());
                    }
                }
            }
            Some("released") => {
                let (Some(k), Some(verdict)) = (v["hold"].as_u64(), v["verdict"].as_str()) else {
                    return;
                };
                self.held.remove(&k);
                if let Some(f) = self
                    .conns
                    .iter_mut()
                    .find(|c| c.id == id)
                    .and_then(|c| c.frames.iter_mut().rev().find(|f| f.mark == Mark::Held(k)))
                {
                    f.released = Some(verdict.into());
                }
            }
            _ => {}
        }
    }

    /// The selected connection.
    pub fn current(&self) -> Option<&Conn> {
        self.conns.get(self.selected)
    }

    /// Indexes of the selected connection's frames that pass the filter.
    pub fn visible(&self) -> Vec<usize> {
        let Some(c) = self.current() else {
            return Vec::new();
        };
        let f = Filter::parse(&self.filter);
        (0..c.frames.len())
            .filter(|&i| f.matches(&c.frames[i].record))
            .collect()
    }

    /// The selected frame's index among the selected connection's frames.
    pub fn selected_frame(&self) -> Option<usize> {
        let vis = self.visible();
        if self.follow {
            return vis.last().copied();
        }
        let base = self.current()?.base;
        let want = self.frame?;
        vis.iter()
            .copied()
            .find(|&i| base + i as u64 >= want)
            .or(vis.last().copied())
    }

    /// Handles a key.
    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        if let Some(g) = keymap::global(&k) {
            match g {
                Global::Quit => return Action::Quit,
                Global::Follow => self.toggle_follow(),
                Global::Filter => self.focus = Focus::Filter,
                Global::NextFocus => {
                    self.focus = match self.focus {
                        Focus::Input => Focus::Conns,
                        Focus::Conns => Focus::Frames,
                        _ => Focus::Input,
                    }
                }
                Global::Back => {
                    match self.focus {
                        Focus::Input => return Action::Quit,
                        Focus::Filter => self.filter.clear(),
                        _ => {}
                    }
                    self.focus = Focus::Input;
                }
            }
            return Action::None;
        }
        match self.focus {
            Focus::Input => self.input_key(k.code),
            Focus::Filter => {
                match k.code {
                    KeyCode::Enter => self.focus = Focus::Frames,
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) => self.filter.push(c),
                    _ => {}
                }
                Action::None
            }
            Focus::Conns => self.conn_key(k.code),
            Focus::Frames => self.frame_key(k.code),
        }
    }

    fn toggle_follow(&mut self) {
        if self.follow {
            self.pause_at(self.selected_frame());
        } else {
            self.follow = true;
        }
    }

    fn pause_at(&mut self, index: Option<usize>) {
        self.follow = false;
        self.frame = index.zip(self.current()).map(|(i, c)| c.base + i as u64);
    }

    fn pick_conn(&mut self, to: usize) {
        let to = to.min(self.conns.len().saturating_sub(1));
        if to != self.selected {
            self.selected = to;
            self.follow = true;
        }
    }

    fn input_key(&mut self, code: KeyCode) -> Action {
        match code {
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.input);
                self.cursor = 0;
                return self.submit(line.trim());
            }
            KeyCode::Backspace => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                    self.input.remove(self.cursor);
                }
            }
            KeyCode::Delete if self.cursor < self.input.len() => {
                self.input.remove(self.cursor);
            }
            KeyCode::Left => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                }
            }
            KeyCode::Right => {
                if let Some(c) = self.input[self.cursor..].chars().next() {
                    self.cursor += c.len_utf8();
                }
            }
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.input.len(),
            KeyCode::Up => self.pick_conn(self.selected.saturating_sub(1)),
            KeyCode::Down => self.pick_conn(self.selected + 1),
            KeyCode::PageUp | KeyCode::PageDown => {
                return self.frame_key(code);
            }
            KeyCode::Char(c) => {
                self.input.insert(self.cursor, c);
                self.cursor += c.len_utf8();
            }
            _ => {}
        }
        Action::None
    }

    /// The composer's line as a `control` line: one that names no connection goes to the
    /// selected one.
    fn submit(&mut self, line: &str) -> Action {
        if line.is_empty() {
            return Action::None;
        }
        let global = ["/forward", "/drop", "/edit", "/intercept"]
            .iter()
            .any(|w| line.split_whitespace().next() == Some(*w));
        if global || line.starts_with(|c: char| c.is_ascii_digit()) {
            return Action::Run(line.to_string());
        }
        match self.current() {
            None => {
                self.notice = "no connection selected".into();
                Action::None
            }
            Some(c) if line.starts_with(['>', '<']) => Action::Run(format!("{}{line}", c.id)),
            Some(c) => Action::Run(format!("{} {line}", c.id)),
        }
    }

    /// Puts `text` in the composer, the cursor at its end, and gives it the keyboard.
    fn set_input(&mut self, text: String) {
        self.cursor = text.len();
        self.input = text;
        self.focus = Focus::Input;
    }

    fn conn_key(&mut self, code: KeyCode) -> Action {
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.pick_conn(self.selected.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.pick_conn(self.selected + 1),
            KeyCode::Char('i') => {
                if let Some(c) = self.current() {
                    return Action::ToggleIntercept(c.id);
                }
            }
            KeyCode::Char('x') if self.current().is_some() => {
                self.set_input("/close ".into());
                self.notice =
                    "close it both ways: /close CODE REASON (1000 without a code), Enter".into();
            }
            _ => {}
        }
        Action::None
    }

    fn frame_key(&mut self, code: KeyCode) -> Action {
        let vis = self.visible();
        if vis.is_empty() {
            return Action::None;
        }
        let pos = self
            .selected_frame()
            .and_then(|s| vis.iter().position(|&i| i == s))
            .unwrap_or(vis.len() - 1);
        let held = self
            .current()
            .and_then(|c| c.frames.get(vis[pos]))
            .and_then(Shown::held);
        if let Some(new) = keymap::moved(code, pos, vis.len()) {
            if matches!(code, KeyCode::End | KeyCode::Char('G')) {
                self.follow = true;
            } else {
                self.pause_at(Some(vis[new]));
            }
            return Action::None;
        }
        match code {
            KeyCode::Char('f') => self.toggle_follow(),
            KeyCode::Char('A') => return Action::Run("/forward all".into()),
            KeyCode::Char('a' | 'd' | 'e') if held.is_none() => {
                self.notice = "that message is not held (held messages: ⏸ in the list)".into();
            }
            KeyCode::Char('a') => return Action::Run(format!("/forward {}", held.unwrap_or(0))),
            KeyCode::Char('d') => return Action::Run(format!("/drop {}", held.unwrap_or(0))),
            KeyCode::Char('e') => {
                let shown = self.current().and_then(|c| c.frames.get(vis[pos]));
                if let (Some(k), Some(input)) = (held, shown.and_then(|s| editable(&s.record))) {
                    self.set_input(format!("/edit {k} {input}"));
                    self.notice = format!("edit #{k}, Enter relays it instead");
                }
            }
            _ => {}
        }
        Action::None
    }
}

/// The `id=` of a path's query.
fn id_in(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// The composer input that relays this message again.
fn editable(r: &FrameRecord) -> Option<String> {
    let frame = match r.kind {
        Kind::Text => Outgoing::Text(String::from_utf8_lossy(&r.data).into_owned()),
        Kind::Binary => Outgoing::Binary(r.data.clone()),
        _ => return None,
    };
    compose::editable(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::model::Dir;
    use crossterm::event::KeyModifiers;
    use serde_json::json;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn text(dir: Dir, t: &str) -> FrameRecord {
        FrameRecord::new(dir, Kind::Text, bytes::Bytes::from(t.to_string()), None)
    }

    fn view_with_two_connections() -> View {
        let mut v = View::default();
        for id in [1, 2] {
            v.apply(Event::Line(
                json!({"event": "open", "conn": id, "peer": "p", "path": "/ws"}),
            ));
        }
        v
    }

    #[test]
    fn the_composer_sends_to_the_selected_connection_unless_a_line_names_one() {
        let mut v = view_with_two_connections();
        v.on_key(key(KeyCode::Down));
        let type_line = |v: &mut View, s: &str| {
            v.set_input(s.into());
            v.on_key(key(KeyCode::Enter))
        };
        assert_eq!(
            type_line(&mut v, "> /text hi"),
            Action::Run("2> /text hi".into())
        );
        assert_eq!(
            type_line(&mut v, "/to-client /text hi"),
            Action::Run("2 /to-client /text hi".into())
        );
        assert_eq!(
            type_line(&mut v, "/close 4000 bye"),
            Action::Run("2 /close 4000 bye".into())
        );
        assert_eq!(
            type_line(&mut v, "1< /text x"),
            Action::Run("1< /text x".into())
        );
        assert_eq!(
            type_line(&mut v, "/forward 3"),
            Action::Run("/forward 3".into())
        );
        assert_eq!(
            type_line(&mut v, "/intercept cmd:join"),
            Action::Run("/intercept cmd:join".into())
        );
    }

    #[test]
    fn a_held_message_is_forwarded_edited_or_dropped_by_key() {
        let mut v = view_with_two_connections();
        v.apply(Event::Frame {
            conn: 1,
            record: Box::new(text(Dir::Out, "relayed")),
            mark: Mark::Relayed,
        });
        v.apply(Event::Frame {
            conn: 1,
            record: Box::new(text(Dir::Out, "secret")),
            mark: Mark::Held(7),
        });
        assert_eq!(v.held.get(&7), Some(&1));
        v.on_key(key(KeyCode::Tab));
        assert_eq!(
            v.on_key(key(KeyCode::Char('i'))),
            Action::ToggleIntercept(1)
        );
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.focus, Focus::Frames);
        assert_eq!(
            v.on_key(key(KeyCode::Char('a'))),
            Action::Run("/forward 7".into())
        );
        assert_eq!(
            v.on_key(key(KeyCode::Char('d'))),
            Action::Run("/drop 7".into())
        );
        v.on_key(key(KeyCode::Char('e')));
        assert_eq!(
            (v.focus, v.input.as_str()),
            (Focus::Input, "/edit 7 /text secret")
        );
        v.apply(Event::Line(
            json!({"event": "released", "conn": 1, "hold": 7, "verdict": "edited"}),
        ));
        assert!(v.held.is_empty());
        v.focus = Focus::Frames;
        assert_eq!(
            v.on_key(key(KeyCode::Char('a'))),
            Action::None,
            "no longer held"
        );
        v.on_key(key(KeyCode::Up));
        assert!(!v.follow, "moving in the list pauses following");
        assert_eq!(v.selected_frame(), Some(0));
        v.on_key(key(KeyCode::Char('G')));
        assert!(v.follow);
    }

    #[test]
    fn a_connection_is_named_by_its_url_or_its_welcome_and_counts_bytes() {
        let mut v = View::default();
        v.apply(Event::Line(
            json!({"event": "open", "conn": 1, "path": "/ws?channel=a&id=al%20ice"}),
        ));
        v.apply(Event::Line(
            json!({"event": "open", "conn": 2, "path": "/ws"}),
        ));
        let welcome = r#"{"cmd":"welcome","data":{"client_id":"srv-42"}}"#;
        v.apply(Event::Frame {
            conn: 2,
            record: Box::new(text(Dir::In, welcome)),
            mark: Mark::Relayed,
        });
        v.apply(Event::Frame {
            conn: 2,
            record: Box::new(text(Dir::Out, "12345")),
            mark: Mark::Relayed,
        });
        assert_eq!(v.conns[0].client_id.as_deref(), Some("al ice"));
        let c = &v.conns[1];
        assert_eq!(c.client_id.as_deref(), Some("srv-42"));
        assert_eq!(
            (c.up, c.up_bytes, c.down, c.down_bytes),
            (1, 5, 1, welcome.len() as u64)
        );
    }

    #[test]
    fn the_composer_edits_in_the_middle() {
        let mut v = View::default();
        v.set_input("/text héllo".into());
        for code in [
            KeyCode::Left,
            KeyCode::Left,
            KeyCode::Left,
            KeyCode::Backspace,
        ] {
            v.on_key(key(code));
        }
        v.on_key(key(KeyCode::Char('e')));
        v.on_key(key(KeyCode::Home));
        v.on_key(key(KeyCode::Delete));
        assert_eq!(v.input, "text hello");
        v.on_key(key(KeyCode::End));
        v.on_key(key(KeyCode::Char('!')));
        assert_eq!(v.input, "text hello!");
    }

    #[test]
    fn the_filter_narrows_the_frames_and_esc_clears_it() {
        let mut v = view_with_two_connections();
        for t in [r#"{"cmd":"join"}"#, r#"{"cmd":"ping"}"#] {
            v.apply(Event::Frame {
                conn: 1,
                record: Box::new(text(Dir::In, t)),
                mark: Mark::Relayed,
            });
        }
        v.on_key(KeyEvent::new(KeyCode::Char('f'), KeyModifiers::CONTROL));
        for c in "cmd:join".chars() {
            v.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(v.visible(), vec![0]);
        v.on_key(key(KeyCode::Esc));
        assert_eq!((v.visible().len(), v.focus), (2, Focus::Input));
        assert_eq!(v.on_key(key(KeyCode::Esc)), Action::Quit);
    }
}
