//! The interactive loop: a terminal guard that always restores the terminal (Drop and panic
//! hook), and an event loop generic over the ratatui backend so tests can drive it with a
//! `TestBackend` and synthetic keys.

use std::io::Stdout;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::{Stream, StreamExt};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::app::{Action, App};
use super::compose::{Composed, Outgoing};
use super::session::Event;

/// Puts the terminal in raw mode on the alternate screen; puts it back when dropped, and on a
/// panic before the panic message is printed.
pub struct TerminalGuard {
    /// The terminal.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen.
    pub fn new() -> anyhow::Result<Self> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            hook(info);
        }));
        enable_raw_mode()?;
        execute!(std::io::stdout(), EnterAlternateScreen)?;
        Ok(Self {
            terminal: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
        })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Sends frames to the session, noting requests as pending.
async fn send_all(app: &mut App, out: &mpsc::Sender<Outgoing>, frames: Vec<Composed>) -> bool {
    for c in frames {
        app.sent(&c);
        if out.send(c.frame).await.is_err() {
            app.notice = "the connection is gone; nothing was sent".into();
            return false;
        }
    }
    true
}

/// Runs until the user quits. Keys come from `keys` (crossterm's `EventStream` in real use),
/// session events from `events`; every change is drawn at once, and a 250 ms tick keeps the
/// timers (pending requests, retry countdown) current.
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut keys: impl Stream<Item = std::io::Result<TermEvent>> + Unpin,
    mut events: mpsc::Receiver<Event>,
    out: mpsc::Sender<Outgoing>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut session_over = false;
    loop {
        terminal
            .draw(|f| super::ui::draw(f, app))
            .map_err(|e| anyhow::anyhow!("drawing: {e}"))?;
        let action = tokio::select! {
            k = keys.next() => match k {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => app.on_key(k),
                Some(Ok(_)) => Action::None, // resize and the rest: redrawn on the next turn
                Some(Err(e)) => return Err(e.into()),
                None => Action::Quit,
            },
            e = events.recv(), if !session_over => match e {
                Some(e) => app.on_event(e),
                None => { session_over = true; Action::None }
            },
            _ = tick.tick() => { app.tick(); Action::None }
        };
        match action {
            Action::None => {}
            Action::Quit => return Ok(()),
            Action::Send(frames) => {
                send_all(app, &out, frames).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::decode::Decoder;
    use crate::connect::model::{Dir, FrameRecord, Kind};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use wsp_proto::{Message as _, SendMsg};

    fn key(c: KeyCode) -> std::io::Result<TermEvent> {
        Ok(TermEvent::Key(KeyEvent::new(c, KeyModifiers::NONE)))
    }

    fn screen(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let w = buf.area.width as usize;
        buf.content()
            .chunks(w)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect()
    }

    fn welcome() -> FrameRecord {
        let m = SendMsg {
            cmd: 1000,
            to_client_id: "me".into(),
            channel: vec!["news".into()],
            msg: r#"{"client_id":"me","channels":["news"]}"#.into(),
            ..Default::default()
        };
        FrameRecord::new(Dir::In, Kind::Binary, m.encode_to_vec().into(), None)
    }

    #[tokio::test]
    async fn typing_a_command_sends_it_and_pairs_the_reply() {
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        let (ev_tx, ev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        ev_tx
            .send(Event::Connected(Default::default()))
            .await
            .unwrap();
        ev_tx.send(Event::Frame(welcome())).await.unwrap();
        let mut keys: Vec<std::io::Result<TermEvent>> = "/join sport"
            .chars()
            .map(|c| key(KeyCode::Char(c)))
            .collect();
        keys.push(key(KeyCode::Enter));
        let keys = futures_util::stream::iter(keys).chain(futures_util::stream::pending());
        let run = tokio::spawn(async move {
            let r = tokio::time::timeout(
                Duration::from_millis(600),
                run(&mut t, &mut app, Box::pin(keys), ev_rx, out_tx),
            )
            .await;
            (t, app, r)
        });
        // The session side: the join request arrives; answer it.
        let sent = tokio::time::timeout(Duration::from_secs(2), out_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let Outgoing::Binary(b) = sent else {
            panic!("expected a binary join")
        };
        let req = SendMsg::decode(b.as_ref()).unwrap();
        assert_eq!(
            (req.cmd, req.msg.as_str()),
            (1001, r#"{"channel":"sport"}"#)
        );
        let reply = SendMsg {
            cmd: 1001,
            local_id: req.local_id.clone(),
            status: 0,
            msg: r#"{"client_id":"me","channel":"sport"}"#.into(),
            ..Default::default()
        };
        ev_tx
            .send(Event::Frame(FrameRecord::new(
                Dir::In,
                Kind::Binary,
                reply.encode_to_vec().into(),
                None,
            )))
            .await
            .unwrap();
        let (t, app, r) = run.await.unwrap();
        assert!(r.is_err(), "the loop runs until quit");
        assert!(
            app.pending.is_empty(),
            "the reply was paired: {:?}",
            app.pending
        );
        assert!(app.joined.contains("sport") && app.joined.contains("news"));
        let s = screen(&t);
        assert!(s.contains("● connected ws://x/ws id=me"), "{s}");
        assert!(s.contains("● news") && s.contains("● sport"), "{s}");
        assert!(s.contains("join"), "{s}");
        assert!(s.contains("ok "), "round trip shown: {s}");
        assert!(
            s.contains(crate::connect::ui::HELP.split(" · ").next().unwrap()),
            "{s}"
        );
    }

    #[test]
    fn detail_pane_decodes_every_field_and_the_help_overlay_draws() {
        let mut t = Terminal::new(TestBackend::new(120, 34)).unwrap();
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        let m = SendMsg {
            cmd: 7,
            from_client_id: "a".into(),
            to_client_id: "me".into(),
            cmd_data: br#"{"hello":"world"}"#.to_vec().into(),
            ..Default::default()
        };
        app.on_event(Event::Frame(FrameRecord::new(
            Dir::In,
            Kind::Binary,
            m.encode_to_vec().into(),
            None,
        )));
        app.on_event(Event::Frame(FrameRecord::new(
            Dir::In,
            Kind::Close,
            bytes::Bytes::new(),
            Some((1008, "heartbeat timeout".into())),
        )));
        // Select the SendMsg (pause, move up).
        app.focus = crate::connect::app::Focus::List;
        app.on_key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
        t.draw(|f| crate::connect::ui::draw(f, &app)).unwrap();
        let s = screen(&t);
        assert!(s.contains("PAUSED"), "{s}");
        assert!(s.contains("from_client_id \"a\""), "{s}");
        assert!(s.contains("\"hello\": \"world\""), "cmdData as JSON: {s}");
        assert!(
            s.contains("1008 policy violation"),
            "close code named in the list: {s}"
        );
        app.show_help = true;
        t.draw(|f| crate::connect::ui::draw(f, &app)).unwrap();
        assert!(screen(&t).contains("/join CH · /leave CH"));
    }

    /// Issue 11: after a reconnect the status line says what each rejoin recovered.
    #[test]
    fn the_status_line_shows_recovered_and_gaps() {
        use crate::connect::recover::Outcome;
        let mut t = Terminal::new(TestBackend::new(160, 20)).unwrap();
        let mut app = App::new("ws://x/ws".into(), Decoder::default());
        app.on_event(Event::Connected(Default::default()));
        for (channel, recovered, missed) in [("news", Some(true), 3), ("sport", Some(false), 0)] {
            app.on_event(Event::Recovery(Outcome {
                channel: channel.into(),
                recovered,
                missed,
            }));
        }
        t.draw(|f| crate::connect::ui::draw(f, &app)).unwrap();
        let s = screen(&t);
        assert!(s.contains("recovered news (+3)"), "{s}");
        assert!(s.contains("GAP in sport"), "{s}");
        // A new connection starts a new account.
        app.on_event(Event::Connected(Default::default()));
        t.draw(|f| crate::connect::ui::draw(f, &app)).unwrap();
        assert!(!screen(&t).contains("recovered news"));
    }
}
