//! What the proxy shows: one JSON line per frame and per connection event, on stdout (pipe
//! mode) and in `--record FILE`. A frame's line is `wsp connect --record`'s (`ts_ms`, `dir`,
//! `type`, sizes and everything decoded) plus `conn` (the proxy's connection number) and
//! `direction` (`to_upstream`: the client sent it; `to_client`: the upstream did). `dir` is
//! the client's view (`out` = to_upstream), so `wsp connect --replay` can replay the client
//! side of one connection from a recording (`jq 'select(.conn == 3)'`).

use std::io::Write as _;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::connect::decode::Decoder;
use crate::connect::model::FrameRecord;

/// Which way a frame went through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the upstream.
    ToUpstream,
    /// From the upstream to the client.
    ToClient,
}

/// The lines' destinations.
pub struct Log {
    decoder: Decoder,
    print: bool,
    record: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    /// One line at a time on stdout, whichever connection writes.
    stdout: Mutex<()>,
}

impl Log {
    /// Prints when `print`; records into `record` when given.
    pub fn new(
        decoder: Decoder,
        print: bool,
        record: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let record = match record {
            Some(p) => Some(Mutex::new(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            ))),
            None => None,
        };
        Ok(Self {
            decoder,
            print,
            record,
            stdout: Mutex::new(()),
        })
    }

    /// A frame of connection `conn`; `injected` when the proxy sent it (`inject`).
    pub fn frame(&self, conn: u64, direction: Direction, r: &FrameRecord, injected: bool) {
        let mut v = r.to_json(&self.decoder);
        v["conn"] = json!(conn);
        v["direction"] = json!(match direction {
            Direction::ToUpstream => "to_upstream",
            Direction::ToClient => "to_client",
        });
        if injected {
            v["injected"] = json!(true);
        }
        self.line(&v);
    }

    /// A connection event: `open` (with the path and the upstream's status), `refused`,
    /// `closed`.
    pub fn event(&self, conn: u64, event: &str, mut detail: Value) {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        detail["ts_ms"] = json!(ts);
        detail["conn"] = json!(conn);
        detail["event"] = json!(event);
        self.line(&detail);
    }

    fn line(&self, v: &Value) {
        let text = v.to_string();
        if self.print {
            let _one = self.stdout.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        if let Some(rec) = &self.record {
            let mut f = rec.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{text}");
            let _ = f.flush();
        }
    }
}
