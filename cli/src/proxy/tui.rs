//! The proxy's terminal UI (stdout a terminal, no `--print`): the connections on the left
//! (number, client address, path, state, frames each way, close code), the selected one's
//! frames on the right (← to client, → to upstream, decoded: cmd, route, size), the selected
//! frame's whole decoded form below, and a composer that injects into the selected connection:
//! `> INPUT` to the upstream, `< INPUT` to the client (the `wsp connect` composer's syntax).
//! Keys: ↑/↓ pick a connection, PgUp/PgDn a frame (End: follow the newest), Enter sends, Esc
//! or Ctrl-C quits. Bounded: the newest 500 connections, 2,000 frames each.

use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Direction as Axis, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use serde_json::Value;

use super::log::Event;
use super::shared::Shared;
use crate::connect::tui::TerminalGuard;

const MAX_CONNS: usize = 500;
const MAX_FRAMES: usize = 2000;

struct Conn {
    id: u64,
    peer: String,
    path: String,
    closed: Option<String>,
    up: u64,
    down: u64,
    frames: VecDeque<Value>,
}

#[derive(Default)]
struct View {
    conns: VecDeque<Conn>,
    selected: usize,
    /// Selected frame counted from the newest (0: follow).
    frame_back: usize,
    input: String,
    notice: String,
}

impl View {
    fn apply(&mut self, e: Event) {
        match e {
            Event::Line(v) => {
                let Some(id) = v["conn"].as_u64() else { return };
                match v["event"].as_str() {
                    Some("open") | Some("refused") if !self.conns.iter().any(|c| c.id == id) => {
                        if self.conns.len() == MAX_CONNS {
                            self.conns.pop_front();
                            self.selected = self.selected.saturating_sub(1);
                        }
                        self.conns.push_back(Conn {
                            id,
                            peer: v["peer"].as_str().unwrap_or("").into(),
                            path: v["path"].as_str().unwrap_or("").into(),
                            closed: (v["event"] == "refused")
                                .then(|| format!("refused {}", v["status"])),
                            up: 0,
                            down: 0,
                            frames: VecDeque::new(),
                        });
                    }
                    Some("closed") => {
                        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                            c.closed = Some(match v["code"].as_u64() {
                                Some(code) => {
                                    format!("closed {code} by {}", v["by"].as_str().unwrap_or("?"))
                                }
                                None => format!("ended: {}", v["error"].as_str().unwrap_or("")),
                            });
                        }
                    }
                    None => {
                        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                            if v["direction"] == "to_upstream" {
                                c.up += 1;
                            } else {
                                c.down += 1;
                            }
                            if c.frames.len() == MAX_FRAMES {
                                c.frames.pop_front();
                            }
                            c.frames.push_back(v);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn current(&self) -> Option<&Conn> {
        self.conns.get(self.selected)
    }
}

fn frame_line(v: &Value) -> String {
    let arrow = if v["direction"] == "to_upstream" {
        "→"
    } else {
        "←"
    };
    let injected = if v["injected"] == true {
        " (injected)"
    } else {
        ""
    };
    let what = v["cmd"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["close"]["code"].as_u64().map(|c| format!("close {c}")))
        .unwrap_or_else(|| v["type"].as_str().unwrap_or("").to_string());
    let text = v["text"]
        .as_str()
        .map(|t| t.chars().take(60).collect::<String>())
        .unwrap_or_default();
    format!(
        "{arrow} {:<8} {:<18} {:>6} B{injected}  {text}",
        v["type"].as_str().unwrap_or(""),
        what,
        v["size"].as_u64().unwrap_or(0)
    )
}

/// Runs the UI until Esc or Ctrl-C.
pub fn run(shared: Arc<Shared>, events: Receiver<Event>) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::new()?;
    let mut view = View::default();
    let mut next_id = 0u64;
    loop {
        while let Ok(e) = events.try_recv() {
            view.apply(e);
        }
        guard.terminal.draw(|f| {
            let rows = Layout::default()
                .direction(Axis::Vertical)
                .constraints([
                    Constraint::Min(5),
                    Constraint::Length(8),
                    Constraint::Length(3),
                ])
                .split(f.area());
            let cols = Layout::default()
                .direction(Axis::Horizontal)
                .constraints([Constraint::Percentage(35), Constraint::Percentage(65)])
                .split(rows[0]);
            let items: Vec<ListItem> = view
                .conns
                .iter()
                .map(|c| {
                    ListItem::new(format!(
                        "#{} {} {}  →{} ←{}  {}",
                        c.id,
                        c.peer,
                        c.path,
                        c.up,
                        c.down,
                        c.closed.as_deref().unwrap_or("open")
                    ))
                })
                .collect();
            let mut state = ListState::default().with_selected(Some(view.selected));
            f.render_stateful_widget(
                List::new(items)
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title(" connections (↑↓) "),
                    )
                    .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
                cols[0],
                &mut state,
            );
            let frames: Vec<&Value> = view
                .current()
                .map(|c| c.frames.iter().collect())
                .unwrap_or_default();
            let pick = frames.len().checked_sub(1 + view.frame_back);
            let items: Vec<ListItem> = frames
                .iter()
                .map(|v| ListItem::new(frame_line(v)))
                .collect();
            let mut fstate = ListState::default().with_selected(pick);
            let title = if view.frame_back == 0 {
                " frames (following; PgUp/PgDn) "
            } else {
                " frames (paused; End follows) "
            };
            f.render_stateful_widget(
                List::new(items)
                    .block(Block::default().borders(Borders::ALL).title(title))
                    .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
                cols[1],
                &mut fstate,
            );
            let detail = pick
                .and_then(|i| frames.get(i))
                .map(|v| {
                    let mut v = (*v).clone();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("base64");
                    }
                    v.to_string()
                })
                .unwrap_or_default();
            f.render_widget(
                Paragraph::new(detail)
                    .wrap(Wrap { trim: false })
                    .block(Block::default().borders(Borders::ALL).title(" frame ")),
                rows[1],
            );
            let prompt = if view.notice.is_empty() {
                " inject: > INPUT to upstream, < INPUT to client (Enter; Esc quits) ".to_string()
            } else {
                format!(" {} ", view.notice)
            };
            f.render_widget(
                Paragraph::new(Line::from(view.input.as_str()))
                    .block(Block::default().borders(Borders::ALL).title(prompt)),
                rows[2],
            );
        })?;
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        let TermEvent::Key(k) = event::read()? else {
            continue;
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Esc => return Ok(()),
            KeyCode::Char('c') if ctrl => return Ok(()),
            KeyCode::Up => {
                view.selected = view.selected.saturating_sub(1);
                view.frame_back = 0;
            }
            KeyCode::Down => {
                view.selected = (view.selected + 1).min(view.conns.len().saturating_sub(1));
                view.frame_back = 0;
            }
            KeyCode::PageUp => view.frame_back += 1,
            KeyCode::PageDown => view.frame_back = view.frame_back.saturating_sub(1),
            KeyCode::End => view.frame_back = 0,
            KeyCode::Backspace => {
                view.input.pop();
            }
            KeyCode::Enter => {
                let input = std::mem::take(&mut view.input);
                view.notice.clear();
                match view.current() {
                    None => view.notice = "no connection selected".into(),
                    Some(c) => {
                        if let Err(e) = shared
                            .inject
                            .line(&format!("{}{}", c.id, input.trim()), &mut next_id)
                        {
                            view.notice = e;
                        }
                    }
                }
            }
            KeyCode::Char(ch) => view.input.push(ch),
            _ => {}
        }
    }
}
