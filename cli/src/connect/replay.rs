//! `--replay FILE`: sends a recorded session (`--record` JSON lines; only outgoing frames are
//! sent, with their original spacing, at most 2 s apart) or a script (one composer line per
//! line: a SendMsg JSON object or a /command; `# comments` and blank lines skipped).
//!
//! A `wsp proxy --record` file holds every connection's frames (each line has `conn`) and the
//! proxy's events: `--replay-conn N` replays what the client of connection N sent (`dir: out`;
//! frames the proxy injected are not the client's and are skipped, event lines too). A file
//! with several connections and no `--replay-conn` is refused, naming them.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::Value;
use tokio::sync::mpsc;

use super::compose::{self, Outgoing};

/// One step of a replay: wait, then send.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Pause before sending.
    pub delay: Duration,
    /// The frame.
    pub frame: Outgoing,
}

/// Reads and parses a replay file (only proxy connection `conn`'s lines, when given); errors
/// name the line.
pub fn load(path: &std::path::Path, conn: Option<u64>) -> anyhow::Result<Vec<Step>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut steps = Vec::new();
    let mut last_ts: Option<u64> = None;
    let mut next_id = 0;
    let mut conns = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            let line_conn = v.get("conn").and_then(Value::as_u64);
            if let Some(c) = line_conn {
                conns.insert(c);
            }
            if v.get("event").is_some() && line_conn.is_some() {
                continue; // a proxy's connection event
            }
            if conn.is_some() && line_conn != conn {
                continue;
            }
            if let Some(dir) = v.get("dir").and_then(Value::as_str) {
                if v["injected"] == true {
                    continue; // the proxy sent it, not the client
                }
                let ts = v["ts_ms"].as_u64().unwrap_or(0);
                if dir != "out" {
                    continue;
                }
                let delay = last_ts.map_or(Duration::ZERO, |l| {
                    Duration::from_millis(ts.saturating_sub(l).min(2000))
                });
                last_ts = Some(ts);
                let frame = match v["type"].as_str() {
                    Some("text") => Outgoing::Text(v["text"].as_str().unwrap_or_default().into()),
                    Some("binary") => Outgoing::Binary(
                        base64::engine::general_purpose::STANDARD
                            .decode(v["base64"].as_str().unwrap_or_default())
                            .with_context(|| format!("{}: bad base64", at()))?
                            .into(),
                    ),
                    Some("close") => Outgoing::Close(
                        v["close"]["code"].as_u64().unwrap_or(1000) as u16,
                        v["close"]["reason"].as_str().unwrap_or("").into(),
                    ),
                    _ => continue,
                };
                steps.push(Step { delay, frame });
                continue;
            }
        }
        let c = compose::parse(line, &mut next_id).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
        steps.push(Step {
            delay: Duration::ZERO,
            frame: c.frame,
        });
    }
    if conn.is_none() && conns.len() > 1 {
        let list: Vec<String> = conns.iter().map(u64::to_string).collect();
        anyhow::bail!(
            "{} holds the frames of {} proxy connections ({}): pick one with --replay-conn N",
            path.display(),
            conns.len(),
            list.join(", ")
        );
    }
    if let Some(c) = conn.filter(|c| !conns.contains(c)) {
        anyhow::bail!("{} has no frame of proxy connection {c}", path.display());
    }
    Ok(steps)
}

/// Sends the steps in the background.
pub fn spawn(steps: Vec<Step>, out: mpsc::Sender<Outgoing>) {
    tokio::spawn(async move {
        for s in steps {
            tokio::time::sleep(s.delay).await;
            if out.send(s.frame).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_recordings_load() {
        let dir = std::env::temp_dir().join(format!("wsp-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.txt");
        std::fs::write(
            &p,
            "# a script\n/join news\n{\"dir\":\"in\",\"type\":\"text\",\"text\":\"x\",\"ts_ms\":1}\n\
             {\"dir\":\"out\",\"type\":\"text\",\"text\":\"hello\",\"ts_ms\":1000}\n\
             {\"dir\":\"out\",\"type\":\"binary\",\"base64\":\"AAE=\",\"ts_ms\":1500}\n",
        )
        .unwrap();
        let steps = load(&p, None).unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].frame, Outgoing::Text("hello".into()));
        assert_eq!(
            steps[2],
            Step {
                delay: Duration::from_millis(500),
                frame: Outgoing::Binary(vec![0, 1].into())
            }
        );
        std::fs::write(&p, "/nope\n").unwrap();
        assert!(load(&p, None).unwrap_err().to_string().contains(":1"));
    }

    #[test]
    fn a_proxy_recording_replays_one_connections_client_side() {
        let dir = std::env::temp_dir().join(format!("wsp-replay-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("proxy.jsonl");
        std::fs::write(
            &p,
            "{\"event\":\"open\",\"conn\":1,\"path\":\"/ws\",\"ts_ms\":1}\n\
             {\"conn\":1,\"dir\":\"out\",\"type\":\"text\",\"text\":\"one\",\"ts_ms\":10}\n\
             {\"conn\":2,\"dir\":\"out\",\"type\":\"text\",\"text\":\"two\",\"ts_ms\":20}\n\
             {\"conn\":1,\"dir\":\"out\",\"type\":\"text\",\"text\":\"injected\",\"injected\":true,\"ts_ms\":30}\n\
             {\"conn\":1,\"dir\":\"in\",\"type\":\"text\",\"text\":\"reply\",\"ts_ms\":40}\n",
        )
        .unwrap();
        let steps = load(&p, Some(1)).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.frame.clone()).collect::<Vec<_>>(),
            vec![Outgoing::Text("one".into())]
        );
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("(1, 2)") && e.contains("--replay-conn"), "{e}");
        assert!(load(&p, Some(9)).is_err());
    }
}
