//! `wsp api`: calls the server API of a running pool (`POST /api`, `POST /api/batch`) and
//! prints the reply as JSON. Exit code 0 when every reply has status 0, 1 otherwise, 2 when the
//! server cannot be reached.
//!
//! Arguments follow httpie's convention: `key=value` is a string, `key:=JSON` is any JSON value
//! (number, array, object); a dotted key (`data.title=hi`) builds nested objects.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;
use wsp_server::protocol::JsonReply;

/// Flags of `wsp api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The pool: `http://HOST:PORT` (or `https://`; a `ws://…/ws` URL works too).
    #[arg(long, env = "WSP_API_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's `--api-key`.
    #[arg(long, env = "WSP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The request id echoed in the reply.
    #[arg(long, default_value = "1")]
    seqno: String,
    /// Send a batch instead: a JSON array of `{"cmd","seqno","data"}` from FILE (`-`: stdin).
    #[arg(long, conflicts_with = "cmd")]
    batch: Option<PathBuf>,
    /// The command, e.g. `send_to_channel`, `client_ids_by_channel`, `close_client`.
    #[arg(required_unless_present = "batch")]
    cmd: Option<String>,
    /// Its arguments: `key=value` (a string) or `key:=JSON`, e.g. `channel=news data.title=hi`.
    args: Vec<String>,
}

/// Runs `wsp api`.
pub fn main(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let base = base_url(&args.url)?;
    let (path, body) = match (&args.batch, &args.cmd) {
        (Some(file), _) => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the batch from stdin")?;
                s
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let v: Value = serde_json::from_str(&text)
                .context("the batch must be a JSON array of {\"cmd\",\"seqno\",\"data\"}")?;
            if !v.is_array() {
                bail!("the batch must be a JSON array of {{\"cmd\",\"seqno\",\"data\"}}");
            }
            ("/api/batch", v)
        }
        (None, Some(cmd)) => {
            let data = crate::kv::parse(&args.args).map_err(anyhow::Error::msg)?;
            (
                "/api",
                serde_json::json!({ "cmd": cmd, "seqno": args.seqno, "data": data }),
            )
        }
        (None, None) => bail!("give a command (e.g. `wsp api client_count`) or --batch FILE"),
    };
    let url = format!("{base}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.post(&url);
    if let Some(k) = &args.api_key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let mut resp = match req.send_json(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsp api: cannot reach {url}: {e}\n  is `wsp serve --api-key …` running there? (--url, WSP_API_URL)");
            return Ok(ExitCode::from(2));
        }
    };
    let http = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .context("reading the reply")?;
    let reply: Value = serde_json::from_str(&text)
        .with_context(|| format!("HTTP {http} from {url}, not a JSON reply: {text:.200}"))?;
    // Printed in the reply's own field order (cmd, seqno, status, msg, data) when it has the
    // reply shape.
    let pretty = match &reply {
        Value::Array(_) => serde_json::from_value::<Vec<JsonReply>>(reply.clone())
            .map(|r| serde_json::to_string_pretty(&r)),
        _ => serde_json::from_value::<JsonReply>(reply.clone())
            .map(|r| serde_json::to_string_pretty(&r)),
    }
    .unwrap_or_else(|_| serde_json::to_string_pretty(&reply))?;
    println!("{pretty}");
    let ok = match &reply {
        Value::Array(items) => items.iter().all(|r| r["status"] == 0),
        r => r["status"] == 0,
    };
    if http != 200 {
        eprintln!(
            "wsp api: HTTP {http}: {}",
            reply["msg"].as_str().unwrap_or("")
        );
    }
    Ok(if ok && http == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `http://host:port` from what the user gave (a trailing `/`, `/api` or `/ws` is dropped;
/// `ws(s)://` becomes `http(s)://`).
fn base_url(given: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(given).with_context(|| format!("--url {given:?} is not a URL"))?;
    let scheme = match u.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => bail!("--url {given:?}: unknown scheme {other:?}; use http://HOST:PORT"),
    };
    u.set_scheme(scheme)
        .map_err(|_| anyhow::anyhow!("--url {given:?}: cannot use {scheme}"))?;
    let path = u.path().trim_end_matches('/');
    let path = path
        .strip_suffix("/api")
        .or_else(|| path.strip_suffix("/ws"))
        .unwrap_or(path)
        .to_string();
    u.set_path(&path);
    u.set_query(None);
    Ok(u.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("ws://127.0.0.1:9/ws").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(base_url("wss://h/api/").unwrap(), "https://h");
        assert!(base_url("ftp://h").is_err());
    }
}
