//! Pipe mode (stdout not a terminal, or `--print`): one JSON object per frame on stdout; each
//! stdin line is sent (the composer's syntax; with `--text`, verbatim as a text frame). At
//! stdin's end, waits `--linger` for replies, then closes with 1000.

use std::io::Write as _;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::compose::{self, Outgoing};
use super::decode::Decoder;
use super::session::Event;

/// Options of pipe mode.
pub struct PipeOptions {
    /// Send stdin lines verbatim as text frames.
    pub text: bool,
    /// Wait this long after stdin ends.
    pub linger: Duration,
    /// Exit after this many received frames.
    pub count: Option<u64>,
}

/// Runs pipe mode until the connection ends, `count` frames arrived, or stdin ended and the
/// linger time passed.
pub async fn run(
    decoder: Decoder,
    mut events: mpsc::Receiver<Event>,
    out: mpsc::Sender<Outgoing>,
    opts: PipeOptions,
) -> anyhow::Result<i32> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut received = 0u64;
    let mut next_id = 0u64;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut connected = false;
    let mut queued: Vec<Outgoing> = Vec::new();
    let mut status = 0;
    loop {
        let linger = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            e = events.recv() => match e {
                Some(Event::Frame(r)) => {
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{}", r.to_json(&decoder))?;
                    stdout.flush()?;
                    if r.dir == super::model::Dir::In {
                        received += 1;
                        if opts.count.is_some_and(|c| received >= c) {
                            let _ = out.send(Outgoing::Close(1000, String::new())).await;
                            deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
                Some(Event::Connected(_)) => {
                    connected = true;
                    for o in queued.drain(..) {
                        out.send(o).await?;
                    }
                }
                Some(Event::Disconnected(why, retry)) => {
                    // "closed": we closed and the server answered; anything else is news.
                    if why != "closed" {
                        eprintln!("wsp connect: {why}");
                        if retry.is_none() {
                            status = 1;
                        }
                    }
                }
                Some(Event::Recovery(o)) => {
                    eprintln!("wsp connect: {}", super::recover::summary(&[o]));
                }
                Some(Event::Ended) | None => return Ok(status),
                Some(_) => {}
            },
            l = lines.next_line(), if stdin_open => match l? {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    let frame = if opts.text {
                        Outgoing::Text(line)
                    } else {
                        match compose::parse(&line, &mut next_id) {
                            Ok(c) => c.frame,
                            Err(e) => { eprintln!("wsp connect: {e}"); continue; }
                        }
                    };
                    if connected { out.send(frame).await?; } else { queued.push(frame); }
                }
                None => {
                    stdin_open = false;
                    if opts.count.is_none() {
                        deadline = Some(tokio::time::Instant::now() + opts.linger);
                    }
                }
            },
            _ = linger => {
                let _ = out.send(Outgoing::Close(1000, String::new())).await;
                deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                // If the close does not end the session in time, stop anyway.
                if !connected { return Ok(status); }
                connected = false;
            }
        }
    }
}
