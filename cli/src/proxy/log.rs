//! What the proxy shows: one JSON line per frame and per connection event, on stdout (pipe
//! mode) and in `--record FILE`. A frame's line is `wsp connect --record`'s (`ts_ms`, `dir`,
//! `type`, sizes and everything decoded) plus `conn` (the proxy's connection number) and
//! `direction` (`to_upstream`: the client sent it; `to_client`: the upstream did). `dir` is
//! the client's view (`out` = to_upstream), so `wsp connect --replay` can replay the client
//! side of one connection from a recording (`--replay FILE --replay-conn 3`).

use std::io::Write as _;

use serde_json::{json, Value};

use crate::connect::decode::Decoder;
use crate::connect::model::{Dir, FrameRecord};

/// Lines waiting for the writer thread (and, separately, events for the terminal UI). When
/// either falls behind (stdout read slowly, a busy terminal), the connection that shows a
/// frame waits for room (an async wait: the runtime's threads go on serving the other
/// connections), so the relay slows rather than memory growing.
pub const QUEUED_LINES: usize = 4096;

/// The lines' destinations: a writer thread that owns stdout and the record file, writing
/// through buffers and flushing whenever it has nothing more to write.
pub struct Log {
    decoder: Decoder,
    tx: Option<tokio::sync::mpsc::Sender<String>>,
    /// The terminal UI's feed, when it runs.
    tui: Option<tokio::sync::mpsc::Sender<Event>>,
}

/// How a frame came to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Relayed as it came.
    Relayed,
    /// Sent by the proxy (`/to-server`, `/to-client`, `/close`).
    Injected,
    /// Held (intercepted) as number K, not relayed yet.
    Held(u64),
    /// Relayed instead of held message K (`/edit`).
    Replaces(u64),
}

/// What the terminal UI is fed.
pub enum Event {
    /// A frame of a connection.
    Frame {
        /// The proxy's connection number.
        conn: u64,
        /// The frame (`dir` `Out`: to the upstream), boxed: the channel's slots stay small.
        record: Box<FrameRecord>,
        /// How it came to be shown.
        mark: Mark,
    },
    /// A connection event, as it is printed (`open`, `refused`, `closed`, `released`).
    Line(Value),
}

impl Log {
    /// Prints when `print`; records into `record` when given.
    pub fn new(
        decoder: Decoder,
        print: bool,
        record: Option<&std::path::Path>,
        tui: Option<tokio::sync::mpsc::Sender<Event>>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut file = match record {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        if !print && file.is_none() {
            return Ok(Self {
                decoder,
                tx: None,
                tui,
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(QUEUED_LINES);
        std::thread::Builder::new()
            .name("wsp-proxy-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                while let Some(first) = rx.blocking_recv() {
                    // Everything queued, then one flush: a line is out as soon as it is alone.
                    for line in
                        std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()))
                    {
                        if print {
                            let _ = writeln!(out, "{line}");
                        }
                        if let Some(f) = file.as_mut() {
                            let _ = writeln!(f, "{line}");
                        }
                    }
                    let _ = out.flush();
                    if let Some(f) = file.as_mut() {
                        let _ = f.flush();
                    }
                }
            })?;
        Ok(Self {
            decoder,
            tx: Some(tx),
            tui,
        })
    }

    /// Lines go somewhere (else frames need not be summarized at all).
    pub fn active(&self) -> bool {
        self.tx.is_some() || self.tui.is_some()
    }

    /// The decoder frames are shown with.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// A frame of connection `conn` (its `dir`: `Out` to the upstream, `In` to the client). Its
    /// line has `injected: true` when the proxy sent it, `held: K` when it is held as K, and
    /// `injected: true, replaces: K` when it was relayed instead of held message K.
    pub async fn frame(&self, conn: u64, r: &FrameRecord, mark: Mark) {
        if let Some(tx) = &self.tx {
            let mut v = r.to_json(&self.decoder);
            v["conn"] = json!(conn);
            v["direction"] = json!(match r.dir {
                Dir::Out => "to_upstream",
                Dir::In => "to_client",
            });
            match mark {
                Mark::Relayed => {}
                Mark::Injected => v["injected"] = json!(true),
                Mark::Held(k) => v["held"] = json!(k),
                Mark::Replaces(k) => {
                    v["injected"] = json!(true);
                    v["replaces"] = json!(k);
                }
            }
            let _ = tx.send(v.to_string()).await;
        }
        if let Some(tui) = &self.tui {
            let _ = tui
                .send(Event::Frame {
                    conn,
                    record: Box::new(r.clone()),
                    mark,
                })
                .await;
        }
    }

    /// A connection event: `open` (with the path and the upstream's status), `refused`,
    /// `closed`, `released` (a held message was forwarded, edited or dropped).
    pub async fn event(&self, conn: u64, event: &str, mut detail: Value) {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        detail["ts_ms"] = json!(ts);
        detail["conn"] = json!(conn);
        detail["event"] = json!(event);
        if let Some(tx) = &self.tx {
            let _ = tx.send(detail.to_string()).await;
        }
        if let Some(tui) = &self.tui {
            let _ = tui.send(Event::Line(detail)).await;
        }
    }
}
