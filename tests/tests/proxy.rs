//! `wsp proxy` as a real process between real clients and a real `wsp serve`: messages pass
//! unchanged both ways and are shown decoded (with a user schema), the upstream's refusals and
//! close codes reach the other side as they were, plain HTTP is forwarded, and each side
//! negotiates compression on its own.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use wsp_proto::SendMsg;
use wsp_tests::{bin, refused_status, Client, Serve};

const CHAT_PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/chat.proto");
const KEY: &str = "proxy-test-api-key";

/// A `wsp proxy` child: its address, and the JSON lines it printed so far.
struct Proxy {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Proxy {
    fn start(upstream: &Serve, extra: &[&str]) -> Proxy {
        Self::start_to(&format!("ws://{}", upstream.addr), extra)
    }

    fn start_to(up: &str, extra: &[&str]) -> Proxy {
        let mut child = Command::new(bin("wsp"))
            .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", up])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsp proxy");
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .split("://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Proxy { child, addr, lines }
    }

    fn ws(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    /// The lines matching `f`, waiting up to 5 s for at least one.
    async fn wait_for(&self, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.wait_for_n(1, f).await
    }

    /// Waits (up to 5 s) until at least `n` printed lines match `f` (the proxy prints through
    /// a queue: a line may come after what it describes has reached the other side).
    async fn wait_for_n(&self, n: usize, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        for _ in 0..100 {
            let found: Vec<Value> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|v| f(v))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no such line; lines: {:?}", self.lines.lock().unwrap());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn messages_pass_unchanged_both_ways_and_are_shown_decoded() {
    let s = Serve::start(&[]);
    let p = Proxy::start(
        &s,
        &["--proto", CHAT_PROTO, "--cmd-type", "101=chat.Message"],
    );
    let mut alice = Client::proto(&p.ws("id=alice&channel=room")).await;
    let mut bob = Client::proto(&p.ws("id=bob")).await;
    // chat.Message {text: "hi", n: 5}
    let cmd_data = vec![0x0a, 0x02, b'h', b'i', 0x10, 0x05];
    bob.send_proto(&SendMsg {
        cmd: 101,
        channel: vec!["room".into()],
        cmd_data: cmd_data.clone().into(),
        ..Default::default()
    })
    .await;
    let got = loop {
        let m = alice.recv_proto().await;
        if m.cmd == 101 {
            break m;
        }
    };
    assert_eq!(got.cmd_data, cmd_data);
    assert_eq!(got.from_client_id, "bob");
    // Shown both ways, decoded with the schema.
    let up = p
        .wait_for(|v| v["direction"] == "to_upstream" && v["sendmsg"]["cmd"] == 101)
        .await;
    assert_eq!(up[0]["cmd_data"]["value"]["text"], "hi", "{}", up[0]);
    let down = p
        .wait_for(|v| v["direction"] == "to_client" && v["sendmsg"]["cmd"] == 101)
        .await;
    assert_eq!(down[0]["cmd_data"]["value"]["n"], 5, "{}", down[0]);
    assert_ne!(up[0]["conn"], down[0]["conn"], "bob sent it, alice got it");
    let opened = p.wait_for(|v| v["event"] == "open").await;
    assert!(
        opened
            .iter()
            .any(|o| o["path"] == "/ws?id=alice&channel=room"),
        "{opened:?}"
    );
}

#[tokio::test]
async fn the_upstreams_refusals_reach_the_client_as_they_are() {
    let s = Serve::start(&[
        "--auth-jwt-secret",
        "0123456789abcdef0123456789abcdef",
        "--allow-origin",
        "https://good.example",
    ]);
    let p = Proxy::start(&s, &[]);
    let e = tokio_tungstenite::connect_async(p.ws("id=x"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 401);
    let mut req = p.ws("id=x").into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let e = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert_eq!(refused_status(e), 403);
    let refused = p.wait_for(|v| v["event"] == "refused").await;
    assert!(refused.iter().any(|r| r["status"] == 401), "{refused:?}");
}

#[tokio::test]
async fn close_codes_and_reasons_pass_both_ways_and_http_is_forwarded() {
    let s = Serve::start(&["--api-key", KEY]);
    let p = Proxy::start(&s, &[]);
    // Upstream → client: the server closes a client with 4002.
    let mut kicked = Client::json(&p.ws("id=kicked")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s
        .api(
            KEY,
            "close_client",
            json!({"client_id": "kicked", "code": 4002, "reason": "kicked"}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(kicked.expect_close().await, (4002, "kicked".to_string()));
    // Client → upstream: the client closes with 4001; the server saw that code.
    let mut leaving = Client::json(&p.ws("id=leaving")).await;
    {
        use futures_util::SinkExt as _;
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        use tokio_tungstenite::tungstenite::Message;
        leaving
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(4001),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
    }
    let closed = p
        .wait_for(|v| v["event"] == "closed" && v["by"] == "client" && v["code"] == 4001)
        .await;
    assert_eq!(closed[0]["reason"], "bye");
    let to_up = p
        .wait_for(|v| v["direction"] == "to_upstream" && v["type"] == "close")
        .await;
    assert_eq!(to_up[0]["close"]["code"], 4001);

    // Anything else is forwarded: the server's health check through the proxy.
    let body = reqwest_like_get(&format!("http://{}/healthz", p.addr)).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
}

/// A GET with a plain TCP socket (HTTP/1.1, `Connection: close`): the body.
async fn reqwest_like_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    tcp.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `wsp connect ARGS --print` sending `/json ping` from stdin: its output.
fn ping_with_connect(args: &[&str]) -> std::process::Output {
    use std::io::Write as _;
    let mut c = Command::new(bin("wsp"))
        .arg("connect")
        .args(args)
        .arg("--print")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "/json ping").unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn each_side_negotiates_compression_on_its_own() {
    let s = Serve::start(&[]); // no --compression: the upstream declines
    let p = Proxy::start(&s, &[]);
    let out = ping_with_connect(&[&p.ws("id=z"), "--compression"]);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["cmd"] == "ping" && l["dir"] == "in"),
        "{lines:?}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opened = rt.block_on(p.wait_for(|v| v["event"] == "open"));
    assert_eq!(opened[0]["client_compression"], true, "{opened:?}");
    assert_eq!(opened[0]["upstream_compression"], false, "{opened:?}");
}

#[tokio::test]
async fn a_frame_injected_from_stdin_reaches_either_side() {
    use std::io::Write as _;
    let s = Serve::start(&[]);
    let mut p = Proxy::start(&s, &[]);
    let mut c = Client::json(&p.ws("id=inj")).await;
    let opened = p.wait_for(|v| v["event"] == "open").await;
    let conn = opened[0]["conn"].as_u64().unwrap();
    let mut stdin = p.child.stdin.take().unwrap();
    // To the client, as if the upstream had sent it.
    writeln!(stdin, "{conn}< /text from-the-proxy").unwrap();
    stdin.flush().unwrap();
    let m = c.next().await;
    assert_eq!(m.into_text().unwrap().as_str(), "from-the-proxy");
    // To the upstream, as if the client had sent it: the server answers the client.
    writeln!(
        stdin,
        r#"{conn}> {{"cmd":"ping","seqno":"inj1","data":{{}}}}"#
    )
    .unwrap();
    stdin.flush().unwrap();
    let reply = c.recv_json().await;
    assert_eq!(
        (reply["cmd"].as_str(), reply["seqno"].as_str()),
        (Some("ping"), Some("inj1")),
        "{reply}"
    );
    let shown = p.wait_for_n(2, |v| v["injected"] == true).await;
    assert_eq!(shown.len(), 2, "{shown:?}");
}

#[tokio::test]
async fn a_wss_upstream_with_a_private_ca_is_proxied() {
    let dir = std::env::temp_dir().join(format!("wsp-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    wsp_tests::make_certs(&dir, "2001", true);
    let s = Serve::start(&[
        "--tls-cert",
        dir.join("cert.pem").to_str().unwrap(),
        "--tls-key",
        dir.join("key.pem").to_str().unwrap(),
    ]);
    let up = format!("wss://{}", s.addr);
    // Without the CA the upstream is not trusted: the client gets a 502 saying why.
    let untrusted = Proxy::start_to(&up, &[]);
    let e = tokio_tungstenite::connect_async(untrusted.ws("id=t"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 502);
    let p = Proxy::start_to(&up, &["--ca", dir.join("ca.pem").to_str().unwrap()]);
    let mut c = Client::json(&p.ws("id=t")).await;
    let r = c.ok("client_count", json!({})).await;
    assert_eq!(r["count"], 1, "{r}");
    // Plain HTTP goes to the upstream's https://.
    let body = reqwest_like_get(&format!("http://{}/healthz", p.addr)).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["tls"], true, "{health}");
}

#[test]
fn the_proxy_serves_wss_itself() {
    let dir = std::env::temp_dir().join(format!("wsp-proxy-own-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    wsp_tests::make_certs(&dir, "3001", true);
    let s = Serve::start(&[]);
    let p = Proxy::start(
        &s,
        &[
            "--tls-cert",
            dir.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            dir.join("key.pem").to_str().unwrap(),
        ],
    );
    let url = format!("wss://{}/ws?id=w", p.addr);
    let ca = dir.join("ca.pem");
    let out = ping_with_connect(&[&url, "--ca", ca.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(r#""cmd":"ping""#) && l.contains(r#""dir":"in""#)),
        "{text}"
    );
}

/// Node's `ws` compressing through the proxy to a server that does not (the proxy inflates and
/// relays it plain), and back compressed: `tests/node/compression.js` checks the 64 KiB
/// message came back intact and compressed on its socket.
#[test]
fn node_ws_with_compression_talks_through_the_proxy_to_a_server_without() {
    let s = Serve::start(&[]);
    let p = Proxy::start(&s, &[]);
    let modules = std::env::var("WSP_NODE_PATH").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node/node_modules").into()
    });
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/node/compression.js"))
        .arg(format!("ws://{}/ws", p.addr))
        .env("NODE_PATH", modules)
        .output()
        .expect("node (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opened = rt.block_on(p.wait_for(|v| v["event"] == "open"));
    assert_eq!(
        (
            &opened[0]["client_compression"],
            &opened[0]["upstream_compression"]
        ),
        (&json!(true), &json!(false)),
        "{opened:?}"
    );
}

/// The reverse: a client without compression, a server with it.
#[tokio::test]
async fn a_plain_client_talks_through_the_proxy_to_a_compressing_server() {
    let s = Serve::start(&["--compression"]);
    let p = Proxy::start(&s, &[]);
    let mut c = Client::json(&p.ws("id=plain")).await;
    let big = "item status=ok ".repeat(4000);
    let r = c
        .ok("send_to_client", json!({"client_id": "plain", "data": big}))
        .await;
    assert_eq!(r["delivered"], 1, "{r}");
    let m = loop {
        let m = c.recv_json().await;
        if m["cmd"] == "message" {
            break m;
        }
    };
    assert_eq!(m["data"]["data"].as_str().map(str::len), Some(big.len()));
    let opened = p.wait_for(|v| v["event"] == "open").await;
    assert_eq!(
        (
            &opened[0]["client_compression"],
            &opened[0]["upstream_compression"]
        ),
        (&json!(false), &json!(true)),
        "{opened:?}"
    );
    // The upstream sent it compressed: the proxy's line says so, with its wire size.
    let shown = p
        .wait_for(|v| v["direction"] == "to_client" && v["cmd"] == "message")
        .await;
    assert_eq!(shown[0]["compressed"], true, "{}", shown[0]);
    assert!(shown[0]["wire_size"].as_u64().unwrap() < big.len() as u64 / 4);
}

/// Headless Chromium loads the demo page through the proxy (the page and its WebSocket both go
/// through it) and exchanges messages with a page connected to the pool directly
/// (`tests/python/browser.py`, with alice's page from the proxy).
#[tokio::test]
async fn a_browser_page_through_the_proxy_talks_with_one_connected_directly() {
    let pool = Serve::start(&["--demo"]);
    let p = Proxy::start(&pool, &[]);
    let _peers = wsp_tests::browser_demo(
        &format!("http://{}", pool.addr),
        Some(&format!("http://{}", p.addr)),
    );
    // The proxy carried alice's page and her socket, and showed her channel message.
    let page = p
        .wait_for(|v| {
            v["event"] == "open" && v["path"].as_str().is_some_and(|x| x.contains("id=alice"))
        })
        .await;
    assert!(!page.is_empty());
    let sent = p
        .wait_for(|v| v["direction"] == "to_upstream" && v.to_string().contains("hello from alice"))
        .await;
    assert!(!sent.is_empty());
}

/// The next SendMsg with `cmd` 101 (the chat messages of these tests), skipping the rest.
async fn next_chat(c: &mut Client) -> SendMsg {
    loop {
        let m = c.recv_proto().await;
        if m.cmd == 101 {
            return m;
        }
    }
}

fn chat(text: &str) -> SendMsg {
    SendMsg {
        cmd: 101,
        channel: vec!["room".into()],
        msg: text.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_intercepted_message_is_held_then_edited_dropped_or_forwarded_while_others_flow() {
    use std::io::Write as _;
    let s = Serve::start(&[]);
    let mut p = Proxy::start(&s, &["--intercept", "dir:up secret"]);
    let mut stdin = p.child.stdin.take().unwrap();
    let mut alice = Client::proto(&p.ws("id=alice&channel=room")).await;
    let mut bob = Client::proto(&p.ws("id=bob&channel=room")).await;
    let mut carol = Client::proto(&p.ws("id=carol&channel=room")).await;

    alice.send_proto(&chat("secret plan")).await;
    let held = p.wait_for(|v| v["held"].is_u64()).await;
    let k = held[0]["held"].as_u64().unwrap();
    assert_eq!(held[0]["sendmsg"]["msg"], "secret plan", "{held:?}");
    // Held: yet bob's connection flows, and so does alice's other direction.
    bob.send_proto(&chat("bob speaks")).await;
    assert_eq!(next_chat(&mut carol).await.msg, "bob speaks");
    assert_eq!(next_chat(&mut alice).await.msg, "bob speaks");

    // Edited: carol gets the edited message from alice, not the held one.
    writeln!(
        stdin,
        r#"/edit {k} {{"cmd":101,"channel":["room"],"msg":"edited plan"}}"#
    )
    .unwrap();
    stdin.flush().unwrap();
    let got = next_chat(&mut carol).await;
    assert_eq!(
        (got.msg.as_str(), got.from_client_id.as_str()),
        ("edited plan", "alice")
    );
    let released = p
        .wait_for(|v| v["event"] == "released" && v["hold"] == k)
        .await;
    assert_eq!(released[0]["verdict"], "edited");
    p.wait_for(|v| v["replaces"] == k && v["injected"] == true)
        .await;

    // Dropped: what alice sends next arrives, the dropped one never does.
    alice.send_proto(&chat("secret two")).await;
    let k2 = p.wait_for(|v| v["held"].is_u64() && v["held"] != k).await[0]["held"]
        .as_u64()
        .unwrap();
    alice
        .send_proto(&chat("public, queued behind the held one"))
        .await;
    writeln!(stdin, "/drop {k2}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        next_chat(&mut carol).await.msg,
        "public, queued behind the held one"
    );

    // Forwarded as it came.
    alice.send_proto(&chat("secret three")).await;
    let k3 = p
        .wait_for(|v| v["held"].as_u64().is_some_and(|h| h > k2))
        .await[0]["held"]
        .as_u64()
        .unwrap();
    writeln!(stdin, "/forward {k3}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_chat(&mut carol).await.msg, "secret three");
    let verdicts: Vec<Value> = p
        .wait_for(|v| v["event"] == "released" && v["hold"] == k3)
        .await;
    assert_eq!(verdicts[0]["verdict"], "forwarded");
    let dropped = p
        .wait_for(|v| v["event"] == "released" && v["hold"] == k2)
        .await;
    assert_eq!(dropped[0]["verdict"], "dropped");
}

#[tokio::test]
async fn a_connection_is_closed_both_ways_with_a_code_and_held_whole_on_demand() {
    use std::io::Write as _;
    let s = Serve::start(&["--api-key", KEY]);
    let mut p = Proxy::start(&s, &[]);
    let mut stdin = p.child.stdin.take().unwrap();
    let mut alice = Client::proto(&p.ws("id=alice&channel=room")).await;
    let mut carol = Client::proto(&p.ws("id=carol&channel=room")).await;
    let conn = |p: &Proxy, id: &str| {
        let lines = p.lines.lock().unwrap();
        lines
            .iter()
            .find(|v| v["event"] == "open" && v["path"].as_str().is_some_and(|q| q.contains(id)))
            .and_then(|v| v["conn"].as_u64())
    };
    p.wait_for(|v| v["event"] == "open" && v["path"].as_str().is_some_and(|q| q.contains("carol")))
        .await;
    let (a, c) = (conn(&p, "alice").unwrap(), conn(&p, "carol").unwrap());

    // Every message of alice's connection held, whatever it says.
    writeln!(stdin, "{a} /intercept on").unwrap();
    stdin.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.send_proto(&chat("anything")).await;
    let k = p.wait_for(|v| v["held"].is_u64()).await[0]["held"]
        .as_u64()
        .unwrap();
    // Turning it off forwards what it held.
    writeln!(stdin, "{a} /intercept off").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_chat(&mut carol).await.msg, "anything");
    p.wait_for(|v| v["event"] == "released" && v["hold"] == k)
        .await;

    // Closed by the proxy: the client gets the code and reason, and so does the server (alice
    // leaves the pool).
    writeln!(stdin, "{c} /close 4321 closed by the operator").unwrap();
    stdin.flush().unwrap();
    assert_eq!(
        carol.expect_close().await,
        (4321, "closed by the operator".to_string())
    );
    let closed = p
        .wait_for(|v| v["event"] == "closed" && v["conn"] == c)
        .await;
    assert_eq!(
        (closed[0]["by"].as_str(), closed[0]["code"].as_u64()),
        (Some("proxy"), Some(4321))
    );
    // The upstream saw carol go: the pool no longer lists her.
    for _ in 0..50 {
        let ids = s
            .api(KEY, "client_ids_by_channel", json!({"channel": "room"}))
            .await;
        if !ids.to_string().contains("carol") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("carol still in the pool after the proxy closed her connection");
}

#[tokio::test]
async fn wsp_connect_replays_one_connections_client_side_of_a_proxy_recording() {
    let s = Serve::start(&[]);
    let dir = tempfile_dir("proxy-replay");
    let rec = dir.join("proxy.jsonl");
    let p = Proxy::start(&s, &["--record", rec.to_str().unwrap()]);
    let mut alice = Client::proto(&p.ws("id=alice")).await;
    let mut bob = Client::proto(&p.ws("id=bob")).await;
    alice.send_proto(&chat("one")).await;
    bob.send_proto(&chat("not alice's")).await;
    alice.send_proto(&chat("two")).await;
    let sent = p
        .wait_for(|v| v["direction"] == "to_upstream" && v["sendmsg"]["msg"] == "two")
        .await;
    let conn = sent[0]["conn"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the record file is flushed when idle

    let mut carol = Client::proto(&format!("{}?id=carol&channel=room", s.url)).await;
    let mut replay = Command::new(bin("wsp"))
        .args([
            "connect",
            &format!("{}?id=replayer", s.url),
            "--print",
            "--replay",
        ])
        .arg(&rec)
        .args(["--replay-conn", &conn.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let got = [next_chat(&mut carol).await, next_chat(&mut carol).await];
    let _ = replay.kill();
    let _ = replay.wait();
    assert_eq!(
        got.iter()
            .map(|m| (m.msg.as_str(), m.from_client_id.as_str()))
            .collect::<Vec<_>>(),
        [("one", "replayer"), ("two", "replayer")]
    );
    // Without --replay-conn, a recording of several connections is refused, naming them.
    let out = Command::new(bin("wsp"))
        .args(["connect", &s.url, "--print", "--replay"])
        .arg(&rec)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--replay-conn"),
        "{err}"
    );
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wsp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
