//! Progress while the run goes: a live ratatui view on a terminal (inline, so the summary
//! follows it in the scrollback), a plain line every second otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, Paragraph};
use ratatui::{Frame, Terminal, TerminalOptions, Viewport};

use super::args::BenchArgs;
use super::stats::Counts;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Opening connections.
    Connecting,
    /// Publishing, for this long so far.
    Publishing(Duration),
    /// Waiting for in-flight messages.
    Draining,
}

/// What the view shows, computed from the live counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Phase.
    pub phase: Phase,
    /// Connections wanted.
    pub target: u64,
    /// Summed counters.
    pub counts: Counts,
    /// Deliveries per second over the last tick.
    pub rate: f64,
    /// Publishing time in all.
    pub duration: Duration,
    /// Scenario and target, one line.
    pub title: String,
}

/// Draws one snapshot (kept apart from the terminal so tests can draw into a `TestBackend`).
pub fn draw(f: &mut Frame, s: &Snapshot) {
    let [title, conns, time, stats] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(Line::from(s.title.clone()).bold()), title);
    let c = &s.counts;
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            (a as f64 / b as f64).clamp(0.0, 1.0)
        }
    };
    f.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(if c.connect_failed > 0 {
                Color::Red
            } else {
                Color::Green
            }))
            .ratio(ratio(c.connected, s.target))
            .label(format!(
                "connections {}/{} ({} failed, {} dropped)",
                c.connected, s.target, c.connect_failed, c.dropped
            )),
        conns,
    );
    let (ratio_t, label) = match s.phase {
        Phase::Connecting => (0.0, "connecting…".to_string()),
        Phase::Publishing(t) => (
            t.as_secs_f64() / s.duration.as_secs_f64().max(1e-9),
            format!(
                "publishing {:.1}s / {:.1}s",
                t.as_secs_f64(),
                s.duration.as_secs_f64()
            ),
        ),
        Phase::Draining => (1.0, "draining in-flight messages…".to_string()),
    };
    f.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(Color::Cyan))
            .ratio(ratio_t.clamp(0.0, 1.0))
            .label(label),
        time,
    );
    let body = vec![
        Line::from(format!("sent        {}", c.sent)),
        Line::from(format!("delivered   {}", c.delivered)),
        Line::from(format!("rate        {:.0} deliveries/s", s.rate)),
        Line::from(if c.recent_p99_us > 0 {
            format!(
                "latency     p50 {:.2} ms · p99 {:.2} ms (last second)",
                c.recent_p50_us as f64 / 1000.0,
                c.recent_p99_us as f64 / 1000.0
            )
        } else {
            "latency     –".to_string()
        }),
    ];
    f.render_widget(
        Paragraph::new(body).block(Block::bordered().title(" live ")),
        stats,
    );
}

enum Mode {
    Tui(Terminal<CrosstermBackend<std::io::Stderr>>),
    Plain { last_print: Option<Duration> },
}

/// The progress display.
pub struct View {
    mode: Mode,
    title: String,
    target: u64,
    duration: Duration,
    last: Option<(Duration, u64)>,
    rate: f64,
}

impl View {
    /// A live view when `tui` and stderr is a terminal; plain lines otherwise.
    pub fn new(tui: bool, args: &BenchArgs, urls: &[String], duration: Duration) -> Self {
        let title = format!(
            "wsp bench · {} · {} clients · {} publishers · {}/s · {} B · {}",
            args.scenario,
            args.clients,
            args.publishers,
            args.rate,
            args.payload,
            urls.join(", ")
        );
        let mode = if tui && std::io::stderr().is_terminal() {
            let backend = CrosstermBackend::new(std::io::stderr());
            match Terminal::with_options(
                backend,
                TerminalOptions {
                    viewport: Viewport::Inline(9),
                },
            ) {
                Ok(t) => Mode::Tui(t),
                Err(_) => Mode::Plain { last_print: None },
            }
        } else {
            Mode::Plain { last_print: None }
        };
        let target = (args.clients + args.publishers) as u64;
        Self {
            mode,
            title,
            target,
            duration,
            last: None,
            rate: 0.0,
        }
    }

    /// Shows the current state.
    pub fn tick(&mut self, phase: Phase, live: &[Counts], elapsed: Duration) {
        let mut counts = Counts::default();
        live.iter().for_each(|c| counts.add(c));
        if let Some((t, d)) = self.last {
            let dt = (elapsed - t).as_secs_f64();
            if dt >= 0.5 {
                self.rate = (counts.delivered.saturating_sub(d)) as f64 / dt;
                self.last = Some((elapsed, counts.delivered));
            }
        } else {
            self.last = Some((elapsed, counts.delivered));
        }
        let snap = Snapshot {
            phase,
            target: self.target,
            counts,
            rate: self.rate,
            duration: self.duration,
            title: self.title.clone(),
        };
        match &mut self.mode {
            Mode::Tui(t) => {
                let _ = t.draw(|f| draw(f, &snap));
            }
            Mode::Plain { last_print } => {
                if last_print.is_some_and(|p| elapsed - p < Duration::from_secs(1)) {
                    return;
                }
                *last_print = Some(elapsed);
                let c = &snap.counts;
                let phase = match snap.phase {
                    Phase::Connecting => "connecting".to_string(),
                    Phase::Publishing(t) => format!(
                        "publishing {:.0}/{:.0}s",
                        t.as_secs_f64(),
                        snap.duration.as_secs_f64()
                    ),
                    Phase::Draining => "draining".to_string(),
                };
                let p99 = if c.recent_p99_us > 0 {
                    format!(" · p99 {:.1} ms", c.recent_p99_us as f64 / 1000.0)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{:>5.1}s] {phase}: {}/{} connected ({} failed) · {} sent · {} delivered · {:.0}/s{p99}",
                    elapsed.as_secs_f64(),
                    c.connected,
                    snap.target,
                    c.connect_failed,
                    c.sent,
                    c.delivered,
                    snap.rate
                );
            }
        }
    }

    /// Leaves the terminal as it was (the inline view stays in the scrollback).
    pub fn finish(&mut self) {
        if let Mode::Tui(t) = &mut self.mode {
            let _ = t.show_cursor();
            let area: Rect = t.get_frame().area();
            let _ = t.backend_mut().set_cursor_position((0, area.bottom()));
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    #[test]
    fn live_view_shows_connections_phase_and_counts() {
        let mut t = Terminal::new(TestBackend::new(70, 9)).unwrap();
        let snap = Snapshot {
            phase: Phase::Publishing(Duration::from_secs(3)),
            target: 10,
            counts: Counts {
                connected: 10,
                sent: 300,
                delivered: 3000,
                recent_p50_us: 1500,
                recent_p99_us: 4250,
                ..Counts::default()
            },
            rate: 1000.0,
            duration: Duration::from_secs(10),
            title: "wsp bench · Broadcast".into(),
        };
        t.draw(|f| draw(f, &snap)).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(text.contains("wsp bench · Broadcast"), "{text}");
        assert!(
            text.contains("connections 10/10 (0 failed, 0 dropped)"),
            "{text}"
        );
        assert!(text.contains("publishing 3.0s / 10.0s"), "{text}");
        assert!(text.contains("delivered   3000"), "{text}");
        assert!(text.contains("1000 deliveries/s"), "{text}");
        assert!(text.contains("p50 1.50 ms · p99 4.25 ms"), "{text}");
    }
}
