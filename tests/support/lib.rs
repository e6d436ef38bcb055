//! Helpers for the end-to-end tests: start a real `wsp serve` process on a free port, and
//! connect real WebSocket clients to it.
#![allow(clippy::missing_panics_doc)]

pub mod faulty;
mod redis;

pub use redis::{Redis, RedisClusterProcs};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsp_proto::{Message as _, SendMsg};

/// How long any single expectation may wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// Path of a binary built by this workspace (`cargo build` puts them next to `deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build it first with `cargo build --workspace`",
        path.display()
    );
    path
}

/// Waits (at most [`WAIT`]) until something accepts connections on loopback `port`.
pub(crate) fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port, never one handed out before in this test process: a test that stops
/// a server and starts it again on its port must not find another test's server there.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A `wsp serve` child process, killed when dropped.
pub struct Serve {
    /// The child process.
    pub child: Child,
    /// `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Serve {
    /// Starts `wsp serve --listen 127.0.0.1:0 ARGS...` and waits for its listening line.
    pub fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(bin("wsp"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            // WSP_TEST_LOG (e.g. `wsp=trace`) shows the server's log, for soak runs.
            .env(
                "RUST_LOG",
                std::env::var("WSP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wsp serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("ws://") || u.starts_with("wss://"))
            .unwrap_or_else(|| panic!("unexpected first line from wsp serve: {line:?}"))
            .to_string();
        let addr = url
            .trim_start_matches("wss://")
            .trim_start_matches("ws://")
            .trim_end_matches("/ws")
            .to_string();
        Serve { child, url, addr }
    }

    /// A cluster node on `redis` with id `id` (liveness TTL 1 s), plus `extra` flags.
    pub fn node(redis: &Redis, id: &str, extra: &[&str]) -> Serve {
        let mut args = redis.flags();
        args.extend(["--server-id", id, "--node-ttl", "1s"]);
        args.extend_from_slice(extra);
        Serve::start(&args)
    }

    /// The `/ws` URL with a query string.
    pub fn ws(&self, query: &str) -> String {
        if query.is_empty() {
            self.url.clone()
        } else {
            format!("{}?{query}", self.url)
        }
    }

    /// Kills the process at once (SIGKILL: no goodbye to anyone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The server process's open files and resident memory (KB), from `/proc`.
    pub fn usage(&self) -> (usize, u64) {
        let pid = self.child.id();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (fds, rss_kb)
    }

    /// The server process's CPU time so far (user + system), from `/proc/PID/stat`.
    pub fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) : utime is the 14th field.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// `GET /healthz` as JSON.
    pub async fn healthz(&self) -> Value {
        let (_, body) = self.http("GET", "/healthz", None, "").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("healthz body {body:?}: {e}"))
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, None, "").await
    }

    /// `POST path` with a JSON body and an optional bearer key: the status and the JSON body.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let (status, text) = self.http("POST", path, key, &body.to_string()).await;
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered {status} with {text:?}: {e}"));
        (status, v)
    }

    /// Calls the server API (`POST /api`) with `key`; returns the reply.
    pub async fn api(&self, key: &str, cmd: &str, data: Value) -> Value {
        let (status, v) = self
            .post(
                "/api",
                Some(key),
                &json!({"cmd": cmd, "seqno": cmd, "data": data}),
            )
            .await;
        assert_eq!(status, 200, "{cmd}: {v}");
        v
    }

    /// One HTTP/1.1 request with `Connection: close`; the status and the (unchunked) body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(&self.addr).await.expect("connect");
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
            .await
            .expect("HTTP answer timed out")
            .unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("HTTP status");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, body)
    }
}

/// The body of a chunked HTTP response.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket test client.
pub struct Client {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The id the server gave (from the welcome frame).
    pub id: String,
    seq: u64,
    /// Frames received while waiting for something else.
    pub pending: Vec<Message>,
}

/// Outcome of a handshake the server refused.
pub fn refused_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

impl Client {
    /// Connects with JSON replies (`format=json` is added) and reads the welcome frame.
    pub async fn json(url: &str) -> Client {
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut c = Self::raw(&format!("{url}{sep}format=json")).await;
        let welcome = c.recv_json().await;
        assert_eq!(welcome["cmd"], "welcome", "first frame: {welcome}");
        c.id = welcome["data"]["client_id"].as_str().unwrap().to_string();
        c
    }

    /// Connects in protobuf form and reads the welcome `SendMsg`.
    pub async fn proto(url: &str) -> Client {
        let mut c = Self::raw(url).await;
        let welcome = c.recv_proto().await;
        assert_eq!(welcome.cmd, 1000, "first frame: {welcome:?}");
        c.id = welcome.to_client_id.clone();
        c
    }

    /// Connects and reads nothing.
    pub async fn raw(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Client {
            ws,
            id: String::new(),
            seq: 0,
            pending: Vec::new(),
        }
    }

    /// Connects with a prepared request (extra headers) and reads nothing.
    pub async fn with_request(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect: {e}"));
        Client {
            ws,
            id: String::new(),
            seq: 0,
            pending: Vec::new(),
        }
    }

    /// Next data frame (pings and pongs skipped), or panics after [`WAIT`].
    pub async fn next(&mut self) -> Message {
        if !self.pending.is_empty() {
            return self.pending.remove(0);
        }
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("read error");
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                return m;
            }
        }
    }

    /// Next frame as JSON (must be text).
    pub async fn recv_json(&mut self) -> Value {
        match self.next().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON text frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Next frame as SendMsg (must be binary).
    pub async fn recv_proto(&mut self) -> SendMsg {
        match self.next().await {
            Message::Binary(b) => SendMsg::decode(b.as_ref()).expect("SendMsg frame"),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, v: &Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// Sends a SendMsg as a binary frame.
    pub async fn send_proto(&mut self, m: &SendMsg) {
        self.ws
            .send(Message::binary(m.encode_to_vec()))
            .await
            .expect("send");
    }

    /// Sends `{"cmd", "seqno", "data"}` and returns the reply with that seqno; other frames are
    /// kept for later.
    pub async fn call(&mut self, cmd: &str, data: Value) -> Value {
        self.seq += 1;
        let seqno = format!("s{}", self.seq);
        self.send_json(&json!({ "cmd": cmd, "seqno": seqno, "data": data }))
            .await;
        let mut kept = Vec::new();
        let reply = loop {
            let m = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(m))) => m,
                other => panic!("no reply to {cmd}: {other:?}"),
            };
            if let Message::Text(t) = &m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["seqno"] == seqno {
                    break v;
                }
            }
            if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
                kept.push(m);
            }
        };
        self.pending.extend(kept);
        reply
    }

    /// Like [`Client::call`], asserting status 0, returning `data`.
    pub async fn ok(&mut self, cmd: &str, data: Value) -> Value {
        let r = self.call(cmd, data).await;
        assert_eq!(r["status"], 0, "{cmd} failed: {r}");
        r["data"].clone()
    }

    /// Reads until the close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close")
            {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error before a close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Asserts that nothing (but pings) arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        assert!(
            self.pending.is_empty(),
            "unexpected frames: {:?}",
            self.pending
        );
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// A private CA and a localhost leaf certificate it signs (serial `serial`), in `dir`.
pub fn make_certs(dir: &std::path::Path, serial: &str, with_ca: bool) {
    let script = format!(
        "set -e
        {}
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 0x{serial} -days 1 -extfile leaf.ext -out cert.pem",
        if with_ca {
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=wsp-test-ca -keyout ca.key -out ca.pem"
        } else {
            ""
        }
    );
    let ok = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh");
    assert!(ok.success(), "openssl failed (apt-get install openssl)");
}

/// The servers `tests/python/browser.py` needs besides the pool: a demo page on another
/// origin (eve's), and a pool that allows that origin. Killed when dropped.
pub struct BrowserPeers {
    /// Serves eve's page.
    pub foreign: Serve,
    /// Allows eve's origin.
    pub allowing: Serve,
}

/// Runs the demo-page scenario of `tests/python/browser.py` in headless Chromium against the
/// pool at `pool` (`http://ADDR`), alice's page from `alice` when given (e.g. a proxy in front
/// of the pool); panics with the script's output unless it printed `browser: ok`.
pub fn browser_demo(pool: &str, alice: Option<&str>) -> BrowserPeers {
    let foreign = Serve::start(&["--demo"]);
    let foreign_origin = format!("http://{}", foreign.addr);
    let allowing = Serve::start(&["--allow-origin", &foreign_origin]);
    let chromium = std::env::var("WSP_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(&python);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/browser.py"))
        .arg(&chromium)
        .arg(pool)
        .arg(&foreign_origin)
        .arg(&allowing.url);
    if let Ok(shot) = std::env::var("WSP_DEMO_SCREENSHOT") {
        cmd.arg(shot);
    }
    if let Some(a) = alice {
        cmd.env("WSP_BROWSER_ALICE", a);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("browser: ok"),
        "browser.py failed (is `chromium` installed? scripts/setup installs it):\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    BrowserPeers { foreign, allowing }
}
