//! The proxy's terminal UI (stdout a terminal, no `--print`), drawn from a `view::View`: the
//! connections on the left (number, client id, state, frames and bytes each way, client
//! address, path; `⏸` when
//! every message of it is held), the selected one's frames on the right as `wsp connect` lists
//! them (→ to the upstream, ← to the client; held, injected and edited ones noted), the
//! selected frame decoded below as `wsp connect`'s detail pane shows it, and the composer.
//! Every command goes through `control`, as a stdin line would.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Table, TableState, Wrap};
use ratatui::Frame;

use super::control;
use super::log::{Event, Mark};
use super::shared::Shared;
use super::view::{Action, Focus, Shown, View};
use crate::connect::render::{self, focused};
use crate::connect::tui::TerminalGuard;

const HELP: &str = "Tab focus · conns: i intercept, x close · frames: a forward, e edit, d drop, A forward all, f follow · Ctrl-F filter · Esc/Ctrl-C quit";

/// Runs the UI until Esc (from the composer) or Ctrl-C.
pub fn run(
    shared: Arc<Shared>,
    mut events: tokio::sync::mpsc::Receiver<Event>,
) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::new()?;
    let mut view = View::default();
    let mut next_id = 0u64;
    loop {
        while let Ok(e) = events.try_recv() {
            view.apply(e);
        }
        guard.terminal.draw(|f| draw(f, &view, &shared))?;
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        let TermEvent::Key(k) = event::read()? else {
            continue;
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let line = match view.on_key(k) {
            Action::None => continue,
            Action::Quit => return Ok(()),
            Action::Run(line) => line,
            Action::ToggleIntercept(id) => format!(
                "{id} /intercept {}",
                if shared.intercept.conn_on(id) {
                    "off"
                } else {
                    "on"
                }
            ),
        };
        view.notice = match control::execute(&line, &shared.conns, &shared.intercept, &mut next_id)
        {
            Ok(done) => done,
            Err(e) => format!("⚠ {e}"),
        };
    }
}

fn draw(f: &mut Frame, view: &View, shared: &Shared) {
    let [body, detail, composer, help] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Percentage(35),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let [conns, frames] =
        Layout::horizontal([Constraint::Percentage(32), Constraint::Percentage(68)]).areas(body);
    draw_conns(f, conns, view, shared);
    draw_frames(f, frames, view);
    draw_detail(f, detail, view, shared);
    let title = if view.notice.is_empty() {
        " > INPUT to the upstream · < INPUT to the client · /close CODE REASON · /intercept EXPR "
            .to_string()
    } else {
        format!(" {} ", view.notice)
    };
    let on = view.focus == Focus::Input;
    f.render_widget(
        Paragraph::new(if on {
            let (a, b) = view.input.split_at(view.cursor);
            format!("{a}▏{b}")
        } else {
            view.input.clone()
        })
        .block(focused(Block::bordered().title(title), on)),
        composer,
    );
    f.render_widget(Paragraph::new(HELP).fg(Color::DarkGray), help);
}

fn draw_conns(f: &mut Frame, area: Rect, view: &View, shared: &Shared) {
    let items: Vec<ListItem> = view
        .conns
        .iter()
        .map(|c| {
            let hold = if shared.intercept.conn_on(c.id) {
                "⏸ "
            } else {
                ""
            };
            ListItem::new(format!(
                "{hold}#{} {} {}  →{} {} ←{} {}  {} {}",
                c.id,
                short(c.client_id.as_deref().unwrap_or("-")),
                c.closed.as_deref().unwrap_or("open"),
                c.up,
                size(c.up_bytes),
                c.down,
                size(c.down_bytes),
                c.peer,
                c.path,
            ))
        })
        .collect();
    let title = match shared.intercept.expr() {
        Some(e) => format!(" connections · holding {e:?} · {} held ", view.held.len()),
        None if !view.held.is_empty() => format!(" connections · {} held ", view.held.len()),
        None => " connections ".to_string(),
    };
    let mut state = ListState::default().with_selected(Some(view.selected));
    f.render_stateful_widget(
        List::new(items)
            .block(focused(
                Block::bordered().title(title),
                view.focus == Focus::Conns,
            ))
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        area,
        &mut state,
    );
}

/// An id as the list shows it: a long one (a server-given id is 41 characters) cut to its
/// first 16 (the detail pane and the lines keep it whole).
fn short(id: &str) -> String {
    match id.char_indices().nth(16) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_string(),
    }
}

/// Bytes, short: `512 B`, `3.4 KB`, `12.0 MB`.
fn size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// What the proxy did with a frame, for its status column.
fn note(s: &Shown) -> Option<(String, Color)> {
    match (s.mark, &s.released) {
        (Mark::Relayed, _) => None,
        (Mark::Injected, _) => Some(("injected".into(), Color::Magenta)),
        (Mark::Replaces(k), _) => Some((format!("edit of #{k}"), Color::Magenta)),
        (Mark::Held(k), None) => Some((format!("⏸ HELD #{k}"), Color::LightRed)),
        (Mark::Held(k), Some(how)) => Some((format!("#{k} {how}"), Color::DarkGray)),
    }
}

fn draw_frames(f: &mut Frame, area: Rect, view: &View) {
    let vis = view.visible();
    let Some(c) = view.current() else {
        f.render_widget(
            Paragraph::new("no connection yet: point a client at the proxy")
                .block(Block::bordered().title(" frames ")),
            area,
        );
        return;
    };
    let selected = view
        .selected_frame()
        .and_then(|s| vis.iter().position(|&i| i == s));
    let rows: Vec<_> = vis
        .iter()
        .map(|&i| {
            let s = &c.frames[i];
            render::row_noted(&s.record, None, note(s))
        })
        .collect();
    let filter = if view.filter.is_empty() && view.focus != Focus::Filter {
        String::new()
    } else {
        format!(
            " · filter: {}{}",
            view.filter,
            if view.focus == Focus::Filter {
                "▏"
            } else {
                ""
            }
        )
    };
    let title = format!(
        " #{} frames {}/{}{filter} · {} ",
        c.id,
        vis.len(),
        c.frames.len(),
        if view.follow {
            "following"
        } else {
            "paused (f follows)"
        }
    );
    let table = Table::new(rows, render::WIDTHS)
        .header(render::header())
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(focused(
            Block::bordered().title(title),
            matches!(view.focus, Focus::Frames | Focus::Filter),
        ));
    let mut state = TableState::default().with_selected(selected);
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(f: &mut Frame, area: Rect, view: &View, shared: &Shared) {
    let shown = view
        .selected_frame()
        .and_then(|i| view.current().and_then(|c| c.frames.get(i)));
    let lines = match shown {
        None => vec![Line::from("no frame selected").fg(Color::DarkGray)],
        Some(s) => {
            let mut lines = Vec::new();
            if let Some(k) = s.held() {
                lines.push(
                    Line::from(format!(
                        "held as #{k}: a forwards it, e edits it, d drops it (this side waits meanwhile)"
                    ))
                    .fg(Color::LightRed)
                    .bold(),
                );
            }
            lines.extend(render::detail(&s.record, None, shared.log.decoder()));
            lines
        }
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" frame ")),
        area,
    );
}
