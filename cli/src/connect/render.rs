//! How one frame is drawn, wherever frames are listed (`wsp connect`'s inspector, `wsp
//! proxy`'s UI): its row in a frame table, and its detail pane.

use std::time::Duration;

use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Row};
use serde_json::Value;
use wsp_server::close::code_name;

use super::decode::{CmdData, Decoder};
use super::model::{Dir, FrameRecord, Kind};

/// Received frames' color.
pub const IN: Color = Color::Cyan;
/// Sent frames' color.
pub const OUT: Color = Color::Yellow;

/// The frame table's column widths (for [`row`] and [`header`]).
pub const WIDTHS: [Constraint; 8] = [
    Constraint::Length(12),
    Constraint::Length(1),
    Constraint::Length(6),
    Constraint::Length(13),
    Constraint::Length(16),
    Constraint::Length(10),
    Constraint::Length(6),
    Constraint::Min(8),
];

/// The frame table's header.
pub fn header() -> Row<'static> {
    Row::new([
        "time",
        "",
        "type",
        "cmd",
        "from→to",
        "channels",
        "size",
        "status",
    ])
    .bold()
}

/// One frame's row: time, direction, type, cmd, route, channels, size (`z`: came
/// compressed), status (a reply's code or round trip, a close code).
pub fn row(r: &FrameRecord, rtt: Option<Duration>) -> Row<'static> {
    row_noted(r, rtt, None)
}

/// [`row`], with `note` (text and color) in the status column instead, when given: what the
/// proxy did with the frame (held, injected, …).
pub fn row_noted(
    r: &FrameRecord,
    rtt: Option<Duration>,
    note: Option<(String, Color)>,
) -> Row<'static> {
    let s = &r.summary;
    let color = if r.dir == Dir::In { IN } else { OUT };
    let route = match (&s.from, &s.to) {
        (Some(a), Some(b)) => format!("{a}→{b}"),
        (Some(a), None) => format!("{a}→"),
        (None, Some(b)) => format!("→{b}"),
        _ => String::new(),
    };
    let status = match (&s.close, s.status) {
        (Some((c, _)), _) => format!("{c} {}", code_name(*c)),
        (_, Some(0)) | (_, None) => rtt
            .map(|d| format!("ok {:.1}ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_default(),
        (_, Some(st)) => format!("{st}"),
    };
    let status_style = if s.status.is_some_and(|st| st != 0) || s.close.is_some() {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    };
    let (status, status_style) = match note {
        Some((text, color)) => (text, Style::default().fg(color)),
        None => (status, status_style),
    };
    Row::new(vec![
        Span::raw(r.clock()),
        Span::raw(if r.dir == Dir::In { "←" } else { "→" }).fg(color),
        Span::raw(r.kind.name()).fg(color),
        Span::raw(s.cmd.clone().unwrap_or_default()),
        Span::raw(route),
        Span::raw(s.channels.join(",")),
        Span::raw(match r.wire {
            // `z`: it came compressed (the detail pane gives its size on the wire).
            Some(w) if w.compressed => format!("{}z", r.data.len()),
            _ => format!("{}", r.data.len()),
        }),
        Span::styled(status, status_style),
    ])
}

/// The detail pane's text for one frame: when, which way, sizes (and the round trip of the
/// request it answers), then everything decoded from it.
pub fn detail(r: &FrameRecord, rtt: Option<Duration>, decoder: &Decoder) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(format!(
        "{} {} {} · {} bytes{}{}",
        r.clock(),
        if r.dir == Dir::In { "received" } else { "sent" },
        r.kind.name(),
        r.data.len(),
        r.wire
            .map(|w| format!(
                ", {} on the wire{}",
                w.len,
                if w.compressed { " (compressed)" } else { "" }
            ))
            .unwrap_or_default(),
        rtt.map(|d| format!(" · reply after {:.2} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_default()
    ))
    .bold()];
    match r.kind {
        Kind::Binary => match (decoder.sendmsg_json(&r.data), r.sendmsg()) {
            (Some(Value::Object(fields)), Some(msg)) => {
                // In field-number order, as the .proto lists them.
                for field in wsp_proto::sendmsg_descriptor().fields() {
                    let k = field.name();
                    let Some(v) = fields.get(k).filter(|_| k != "cmd_data") else {
                        continue;
                    };
                    out.push(Line::from(vec![
                        Span::raw(format!("{k:>15} ")).fg(Color::DarkGray),
                        Span::raw(v.to_string()),
                    ]));
                }
                out.push(Line::from(vec![
                    Span::raw(format!("{:>15} ", "cmd_data")).fg(Color::DarkGray),
                    Span::raw(format!("{} bytes", msg.cmd_data.len())),
                ]));
                match decoder.cmd_data(msg.cmd, &msg.cmd_data) {
                    CmdData::Empty => {}
                    CmdData::Message { type_name, json } => {
                        out.push(Line::from(format!("  as {type_name}:")).fg(Color::Green));
                        push_pretty(&mut out, &json);
                    }
                    CmdData::Json(v) => push_pretty(&mut out, &v),
                    CmdData::Text(t) => out.push(Line::from(format!("  \"{t}\""))),
                    CmdData::Hex(h) => out.push(Line::from(format!("  {h}"))),
                }
                if let Ok(v) = serde_json::from_str::<Value>(&msg.msg) {
                    if v.is_object() || v.is_array() {
                        out.push(Line::from("  msg as JSON:").fg(Color::Green));
                        push_pretty(&mut out, &v);
                    }
                }
            }
            _ => out.push(Line::from(format!(
                "not a SendMsg: {}",
                super::decode::hex(&r.data[..r.data.len().min(256)])
            ))),
        },
        Kind::Text => match serde_json::from_slice::<Value>(&r.data) {
            Ok(v) => push_pretty(&mut out, &v),
            Err(_) => out.extend(
                String::from_utf8_lossy(&r.data)
                    .lines()
                    .map(|l| Line::from(l.to_string())),
            ),
        },
        Kind::Close => {
            if let Some((c, reason)) = &r.summary.close {
                out.push(Line::from(format!(
                    "close {c} ({}) {reason}",
                    code_name(*c)
                )));
            }
        }
        Kind::Ping | Kind::Pong => out.push(Line::from(super::decode::hex(&r.data))),
    }
    out
}

fn push_pretty(out: &mut Vec<Line<'static>>, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    out.extend(text.lines().map(|l| Line::from(format!("  {l}"))));
}

/// A pane's border: bright when it has the keyboard.
pub fn focused(block: Block<'_>, on: bool) -> Block<'_> {
    if on {
        block.border_style(
            Style::default()
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
        )
    } else {
        block.border_style(Style::default().fg(Color::DarkGray))
    }
}
