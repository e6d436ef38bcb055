//! Drawing the inspector: status bar, channel sidebar and pool view, frame list, detail pane,
//! composer and help line. `draw` only reads the [`App`].

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::app::{App, Conn, Focus};
use super::render::{self, focused};

/// The help line at the bottom.
pub const HELP: &str =
    "Enter send · Tab focus · ↑↓ history/select · Ctrl-T follow/pause · Ctrl-F filter · Ctrl-R pool · F1 help · Ctrl-C quit";

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let [status, body, composer, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_status(f, status, app);
    let [side, main] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(30)]).areas(body);
    draw_sidebar(f, side, app);
    let [list, detail] =
        Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main);
    draw_list(f, list, app);
    draw_detail(f, detail, app);
    draw_composer(f, composer, app);
    f.render_widget(
        Paragraph::new(HELP).style(Style::default().fg(Color::DarkGray)),
        help,
    );
    if app.show_help {
        draw_help(f, body);
    }
}

fn draw_status(f: &mut Frame, area: Rect, app: &App) {
    let (dot, state) = match &app.conn {
        Conn::Connected => (Span::raw("●").fg(Color::Green), "connected".to_string()),
        Conn::Connecting(n) => (
            Span::raw("◌").fg(Color::Yellow),
            format!("connecting (attempt {n})"),
        ),
        Conn::Disconnected(_, Some(at)) => (
            Span::raw("○").fg(Color::Red),
            format!(
                "disconnected, retry in {:.1}s",
                at.saturating_duration_since(std::time::Instant::now())
                    .as_secs_f64()
            ),
        ),
        Conn::Disconnected(_, None) | Conn::Ended => {
            (Span::raw("○").fg(Color::Red), "disconnected".to_string())
        }
    };
    let pending = app.pending.values().filter(|p| !p.timed_out).count();
    let timed_out = app.pending.values().filter(|p| p.timed_out).count();
    let mut spans = vec![
        dot,
        Span::raw(format!(" {state} {} ", app.url)),
        Span::raw(format!("id={} ", app.client_id.as_deref().unwrap_or("?"))).bold(),
    ];
    if let Some(p) = &app.subprotocol {
        spans.push(Span::raw(format!("· protocol {p} ")));
    }
    if app.compression.is_some() {
        spans.push(Span::raw("· deflate "));
    }
    if let Some(rtt) = app.ping_rtt {
        spans.push(Span::raw(format!(
            "· ping {:.2} ms ",
            rtt.as_secs_f64() * 1000.0
        )));
    }
    spans.push(Span::raw(format!("· pending {pending} ")));
    if !app.recovery.is_empty() {
        let gap = app.recovery.iter().any(|o| o.recovered == Some(false));
        let text = format!("· {} ", super::recover::summary(&app.recovery));
        spans.push(if gap {
            Span::raw(text).fg(Color::Red)
        } else {
            Span::raw(text).fg(Color::Green)
        });
    }
    if timed_out > 0 {
        let mut labels: Vec<&str> = app
            .pending
            .values()
            .filter(|p| p.timed_out)
            .map(|p| p.label.as_str())
            .collect();
        labels.sort_unstable();
        labels.truncate(3);
        spans.push(
            Span::raw(format!("· timed out {timed_out} ({}) ", labels.join(", "))).fg(Color::Red),
        );
    }
    spans.push(if app.follow {
        Span::raw("· FOLLOW ").fg(Color::Green)
    } else {
        Span::raw("· PAUSED ").fg(Color::Magenta)
    });
    if !app.filter.is_empty() || app.focus == Focus::Filter {
        spans.push(
            Span::raw(format!(
                "· filter: {}{}",
                app.filter,
                if app.focus == Focus::Filter {
                    "▏"
                } else {
                    ""
                }
            ))
            .fg(Color::Magenta),
        );
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_sidebar(f: &mut Frame, area: Rect, app: &App) {
    let mut lines = Vec::new();
    let rows = app.channel_rows();
    if rows.is_empty() {
        lines.push(Line::from("(no channels)").fg(Color::DarkGray));
    }
    for (i, (name, joined, count)) in rows.iter().enumerate() {
        let mark = if *joined { "●" } else { "○" };
        let n = count.map(|c| format!(" ({c})")).unwrap_or_default();
        let mut line = Line::from(format!("{mark} {name}{n}"));
        if app.focus == Focus::Channels && i == app.channel_sel {
            line = line.add_modifier(Modifier::REVERSED);
        }
        lines.push(line);
    }
    let pool = &app.pool;
    lines.push(Line::from(""));
    lines.push(
        Line::from(format!(
            "pool: {} clients",
            pool.clients
                .map(|c| c.to_string())
                .unwrap_or_else(|| "?".into())
        ))
        .bold(),
    );
    if let Some(ch) = &pool.focus {
        lines.push(Line::from(format!("in {ch}:")));
        for m in pool.members.iter().take(12) {
            lines.push(Line::from(format!("  {m}")));
        }
        if !pool.uids.is_empty() {
            lines.push(Line::from(format!("uids: {}", pool.uids.join(", "))));
        }
    }
    if let Some((id, info)) = &pool.info {
        lines.push(Line::from(format!("info {id}:")));
        if let Some(o) = info.as_object() {
            for (k, v) in o {
                lines.push(Line::from(format!("  {k}={}", v.as_str().unwrap_or(""))));
            }
        }
    }
    let block = focused(
        Block::bordered().title(" channels · pool "),
        app.focus == Focus::Channels,
    );
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_list(f: &mut Frame, area: Rect, app: &App) {
    let vis = app.visible();
    let selected = if app.follow {
        vis.len().checked_sub(1)
    } else {
        app.selected.and_then(|s| vis.iter().position(|&i| i == s))
    };
    let rows: Vec<Row> = vis
        .iter()
        .map(|&i| {
            let e = &app.frames[i];
            render::row(&e.record, e.rtt)
        })
        .collect();
    let title = format!(
        " frames {}/{}{} ",
        vis.len(),
        app.frames.len(),
        if app.dropped > 0 {
            format!(" (+{} dropped)", app.dropped)
        } else {
            String::new()
        }
    );
    let table = Table::new(rows, render::WIDTHS)
        .header(render::header())
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(focused(
            Block::bordered().title(title),
            app.focus == Focus::List,
        ));
    let mut state = TableState::default().with_selected(selected);
    f.render_stateful_widget(table, area, &mut state);
}

/// The detail pane's text for the current frame.
pub fn detail_lines(app: &App) -> Vec<Line<'static>> {
    match app.current() {
        Some(e) => render::detail(&e.record, e.rtt, &app.decoder),
        None => vec![Line::from("no frame selected").fg(Color::DarkGray)],
    }
}

fn draw_detail(f: &mut Frame, area: Rect, app: &App) {
    let p = Paragraph::new(detail_lines(app))
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" detail "));
    f.render_widget(p, area);
}

fn draw_composer(f: &mut Frame, area: Rect, app: &App) {
    let on = app.focus == Focus::Input;
    let title = if app.notice.is_empty() {
        " send: JSON SendMsg or /command (/help) ".to_string()
    } else {
        format!(" {} ", app.notice)
    };
    let block = focused(Block::bordered().title(title), on);
    let text = format!("> {}{}", app.input, if on { "▏" } else { "" });
    f.render_widget(Paragraph::new(text).block(block), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let text = "\
 /join CH · /leave CH          join or leave a channel
 /to ID TEXT · /ch CH TEXT      SendMsg to a client / a channel (acked)
 /uid UID TEXT · /all TEXT      built-in send_to_uid / send_to_all
 /bind UID · /unbind UID        bind this connection to a uid
 /info k=v …                    update this connection's info
 /cmd NAME [ARGS]               any command, protobuf form: /cmd client_ids_by_channel channel=news
 /json NAME [JSON]              a wsrv JSON text request
 /ping · /text TEXT · /close [CODE [REASON]]
 {\"cmd\":7,\"toClientId\":\"b\"}     a SendMsg in protobuf JSON form
 /pool [CH] · /whois ID          refresh the pool view / show a client's info
 /filter cmd:X ch:X dir:in status:N type:text words…
 Tab: composer → frames (↑↓ PgUp PgDn g G, f follow) → channels (↑↓, + join, - leave, Enter inspect)
 Esc: back to the composer (clears the filter when editing it)";
    let w = area.width.min(84);
    let h = area.height.min(16);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(text).block(Block::bordered().title(" help (F1 or Esc to close) ")),
        rect,
    );
}
