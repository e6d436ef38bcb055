//! The inspector's keys: focus, follow, the composer's history, the frame list, the channel
//! sidebar. Pure state changes: tested here without a terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Action, App, Focus};
use crate::connect::keymap::{self, Global};

impl App {
    /// Handles a key.
    pub fn on_key(&mut self, k: KeyEvent) -> Action {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match (ctrl, k.code) {
            (true, KeyCode::Char('r')) => return Action::Send(self.refresh_pool()),
            (_, KeyCode::F(1)) => {
                self.show_help = !self.show_help;
                return Action::None;
            }
            _ => {}
        }
        if let Some(g) = keymap::global(&k) {
            match g {
                Global::Quit => return Action::Quit,
                Global::Follow => self.toggle_follow(),
                Global::Filter => self.focus = Focus::Filter,
                Global::NextFocus => {
                    self.focus = match self.focus {
                        Focus::Input => Focus::List,
                        Focus::List => Focus::Channels,
                        _ => Focus::Input,
                    }
                }
                Global::Back => {
                    if self.focus == Focus::Filter {
                        self.filter.clear();
                    }
                    self.show_help = false;
                    self.focus = Focus::Input;
                }
            }
            return Action::None;
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
        if code == KeyCode::Char('f') {
            self.toggle_follow();
            return;
        }
        let Some(new) = keymap::moved(code, pos, vis.len()) else {
            return;
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

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::{Action, App, Focus};
    use crate::connect::decode::Decoder;
    use crate::connect::model::{Dir, FrameRecord, Kind};
    use crate::connect::session::Event;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
    }

    fn frame(text: &str) -> Event {
        Event::Frame(FrameRecord::new(
            Dir::In,
            Kind::Text,
            bytes::Bytes::from(text.to_string()),
            None,
        ))
    }

    #[test]
    fn tab_cycles_focus_and_esc_comes_back_to_the_composer() {
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        assert_eq!(app.focus, Focus::Input);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.focus, Focus::List);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.focus, Focus::Channels);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.focus, Focus::Input);
        app.on_key(ctrl('f'));
        typed(&mut app, "cmd:ping");
        assert_eq!(
            (app.focus, app.filter.as_str()),
            (Focus::Filter, "cmd:ping")
        );
        app.on_key(key(KeyCode::Esc));
        assert_eq!((app.focus, app.filter.as_str()), (Focus::Input, ""));
        assert_eq!(app.on_key(ctrl('c')), Action::Quit);
    }

    #[test]
    fn cmd_takes_key_value_arguments_and_an_error_clears_on_the_next_line() {
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        // As `wsp api` takes them (issue 20): refused before with "expected value".
        match app.submit("/cmd client_ids_by_channel channel=news") {
            Action::Send(frames) => {
                let m = match &frames[0].frame {
                    crate::connect::compose::Outgoing::Binary(b) => {
                        <wsp_proto::SendMsg as wsp_proto::Message>::decode(b.clone()).unwrap()
                    }
                    other => panic!("{other:?}"),
                };
                let args: serde_json::Value = serde_json::from_str(&m.msg).unwrap();
                assert_eq!(args, serde_json::json!({"channel": "news"}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(app.submit("/cmd x novalue"), Action::None);
        assert!(app.notice.contains("key=value"), "{}", app.notice);
        assert!(matches!(app.submit("/ping"), Action::Send(_)));
        assert_eq!(app.notice, "");
    }

    #[test]
    fn enter_sends_the_line_and_up_down_walk_the_history() {
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        typed(&mut app, "/ping");
        match app.on_key(key(KeyCode::Enter)) {
            Action::Send(frames) => assert_eq!(frames.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(app.input.is_empty());
        typed(&mut app, "draft");
        app.input.clear();
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input, "/ping");
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.input, "");
        app.on_key(key(KeyCode::Backspace));
        assert_eq!(app.input, "");
    }

    #[test]
    fn the_list_keys_select_frames_and_stop_following() {
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        for i in 0..5 {
            app.on_event(frame(&format!(
                r#"{{"cmd":"message","seqno":"","status":0,"msg":"","data":{{"n":{i}}}}}"#
            )));
        }
        app.on_key(key(KeyCode::Tab)); // the list
        assert!(app.follow);
        app.on_key(key(KeyCode::Up));
        assert!(!app.follow, "moving in the list pauses following");
        assert_eq!(app.selected, Some(3));
        app.on_key(key(KeyCode::Home));
        assert_eq!(app.selected, Some(0));
        app.on_key(key(KeyCode::Char('G')));
        assert_eq!(app.selected, Some(4));
        app.on_key(key(KeyCode::Char('f')));
        assert!(app.follow);
        app.on_key(ctrl('t'));
        assert!(!app.follow);
    }
}
