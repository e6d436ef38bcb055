//! The abuse suite: what an attacker on the network would try against `wsp serve` with its
//! default limits, over real sockets. Each case asserts the documented outcome (docs/SECURITY.md),
//! that a bystander client kept being served, and that the server's open files and memory came
//! back near where they started.

use std::io::{Read, Write};
use std::net::TcpStream as StdTcp;
use std::time::{Duration, Instant};

use serde_json::json;
use wsp_proto::{Message as _, SendMsg};
use wsp_tests::{Client, Serve};

/// Open file descriptors and resident memory of the server process.
fn usage(s: &Serve) -> (usize, u64) {
    s.usage()
}

/// Waits (at most 15 s) for the server's fds to come back to `base` + `slack`, and checks its
/// RSS stayed within `rss_slack_kb` of `base`.
fn back_to_baseline(s: &Serve, base: (usize, u64), slack: usize, rss_slack_kb: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut now = usage(s);
    while now.0 > base.0 + slack && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = usage(s);
    }
    assert!(
        now.0 <= base.0 + slack,
        "open files {} (baseline {})",
        now.0,
        base.0
    );
    assert!(
        now.1 <= base.1 + rss_slack_kb,
        "RSS {} KB (baseline {} KB)",
        now.1,
        base.1
    );
}

/// Server open files and RSS before, during and after each attack, printed as one table row
/// per attack (`cargo test --test abuse -- --nocapture` shows them; the issue note quotes
/// them).
struct Ledger<'a> {
    s: &'a Serve,
    rows: Vec<String>,
}

impl<'a> Ledger<'a> {
    fn new(s: &'a Serve) -> Self {
        Self {
            s,
            rows: Vec::new(),
        }
    }

    /// Records one attack: `before` taken before it began, `during` at its height; "after" is
    /// taken here, once the server's files are back near `before` (at most 15 s).
    fn row(&mut self, attack: &str, outcome: &str, before: (usize, u64), during: (usize, u64)) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut after = usage(self.s);
        while after.0 > before.0 + 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            after = usage(self.s);
        }
        self.rows.push(format!(
            "| {attack} | {outcome} | {} / {} / {} | {} / {} / {} |",
            before.0, during.0, after.0, before.1, during.1, after.1
        ));
    }
}

impl Drop for Ledger<'_> {
    fn drop(&mut self) {
        eprintln!(
            "| attack | outcome | fds before / during / after | RSS KB before / during / after |"
        );
        for r in &self.rows {
            eprintln!("{r}");
        }
    }
}

/// A client on channel `lobby` that must keep being served: a message sent to the channel
/// reaches it, and it answers pings.
async fn bystander_still_served(s: &Serve, by: &mut Client) {
    let mut sender = Client::json(&s.ws("")).await;
    sender
        .ok(
            "send_to_channel",
            json!({"channel": "lobby", "data": "still here"}),
        )
        .await;
    let m = by.recv_json().await;
    assert_eq!(m["data"]["data"], "still here", "{m}");
    by.ok("ping", json!({})).await;
}

fn raw(s: &Serve) -> StdTcp {
    let t = StdTcp::connect(&s.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    t
}

/// Reads until EOF or error; returns what came.
fn drain(mut t: &StdTcp) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match t.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A raw WebSocket connection after a successful handshake.
fn upgraded(s: &Serve, query: &str) -> StdTcp {
    let mut t = raw(s);
    write!(
        t,
        "GET /ws?{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        t.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    t
}

/// A masked client frame.
fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![opcode | if fin { 0x80 } else { 0 }];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]); // zero mask: payload unchanged
    f.extend_from_slice(payload);
    f
}

/// The close code in a server close frame found in `bytes`, if any.
fn close_code(bytes: &[u8]) -> Option<u16> {
    let mut i = 0;
    while i + 2 <= bytes.len() {
        let op = bytes[i] & 0x0f;
        let (len, head) = match bytes[i + 1] & 0x7f {
            126 if i + 4 <= bytes.len() => {
                (u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize, 4)
            }
            127 if i + 10 <= bytes.len() => (
                u64::from_be_bytes(bytes[i + 2..i + 10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if op == 8 && len >= 2 && i + head + 2 <= bytes.len() {
            return Some(u16::from_be_bytes([bytes[i + head], bytes[i + head + 1]]));
        }
        i += head + len;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_level_abuse_is_cut_off() {
    let s = Serve::start(&[
        "--handshake-timeout",
        "2s",
        "--max-connections-per-ip",
        "50",
    ]);
    let mut by = Client::json(&s.ws("id=by&channel=lobby")).await;
    let base = usage(&s);
    let mut ledger = Ledger::new(&s);

    // Slowloris: 200 sockets that never finish their request are dropped at the timeout.
    let t0 = Instant::now();
    let slow: Vec<StdTcp> = (0..200)
        .map(|_| {
            let mut t = raw(&s);
            t.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .unwrap();
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = usage(&s);
    for t in &slow {
        drain(t);
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "partial requests held {took:?}"
    );
    drop(slow);
    ledger.row(
        "slowloris: 200 half requests",
        &format!(
            "all dropped after {:.1} s (handshake timeout 2 s)",
            took.as_secs_f64()
        ),
        base,
        during,
    );
    // A socket that sends nothing at all is dropped too.
    let before = usage(&s);
    let silent = raw(&s);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let during = usage(&s);
    assert!(drain(&silent).is_empty());
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(silent);
    ledger.row(
        "a socket that sends nothing",
        "dropped at the handshake timeout",
        before,
        during,
    );

    // Oversized headers: 431.
    let before = usage(&s);
    let mut t = raw(&s);
    let big = "x".repeat(64 * 1024);
    let _ = write!(
        t,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n"
    );
    let during = usage(&s);
    let answer = String::from_utf8_lossy(&drain(&t)).to_string();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    drop(t);
    ledger.row("64 KiB of headers", "431", before, during);

    // Garbage instead of HTTP: 400 and closed.
    let before = usage(&s);
    let mut t = raw(&s);
    t.write_all(&[
        0x16, 0x03, 0x01, 0xff, 0x00, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n',
    ])
    .unwrap();
    let during = usage(&s);
    let answer = String::from_utf8_lossy(&drain(&t)).to_string();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:.80}"
    );
    drop(t);
    ledger.row("garbage instead of HTTP", "400, closed", before, during);

    // Per-IP limit: the 51st WebSocket from one address gets 429 (the bystander is one).
    let before = usage(&s);
    let mut held = Vec::new();
    for i in 0..49 {
        held.push(upgraded(&s, &format!("id=h{i}")));
    }
    let mut t = raw(&s);
    write!(
        t,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    t.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 429");
    let during = usage(&s);
    drop(held);
    drop(t);
    ledger.row(
        "51 WebSockets from one address (limit 50)",
        "the 51st gets 429",
        before,
        during,
    );

    bystander_still_served(&s, &mut by).await;
    let h = s.healthz().await;
    assert!(
        h["refused"]["handshake_timeout"].as_u64().unwrap() >= 200,
        "{h}"
    );
    assert_eq!(h["refused"]["connections_per_ip"], 1, "{h}");
    back_to_baseline(&s, base, 4, 32 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_level_abuse_closes_only_the_abuser() {
    let s = Serve::start(&[]);
    let mut by = Client::json(&s.ws("id=by&channel=lobby")).await;
    let base = usage(&s);
    let mut ledger = Ledger::new(&s);

    // A 2^63-byte frame header: protocol error (the length's top bit must be 0), 1002.
    let before = usage(&s);
    let mut t = upgraded(&s, "id=huge");
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(1u64 << 63).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    t.write_all(&f).unwrap();
    let during = usage(&s);
    assert_eq!(close_code(&drain(&t)), Some(1002));
    drop(t);
    ledger.row(
        "a frame header claiming 2^63 bytes",
        "close 1002",
        before,
        during,
    );
    // 2^62: over the message limit before anything is reserved, 1009.
    let before = usage(&s);
    let mut t = upgraded(&s, "id=big");
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(1u64 << 62).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    t.write_all(&f).unwrap();
    let during = usage(&s);
    assert_eq!(close_code(&drain(&t)), Some(1009));
    drop(t);
    ledger.row(
        "a frame header claiming 2^62 bytes",
        "close 1009, nothing reserved",
        before,
        during,
    );

    // 200,000 one-byte continuation fragments: one message of 200,000 frames is 200,000
    // frames against the rate limit: closed with 1008.
    let before = usage(&s);
    let t = upgraded(&s, "id=frag");
    let mut bytes = frame(0x1, false, b"a");
    for _ in 0..199_998 {
        bytes.extend_from_slice(&frame(0x0, false, b"a"));
    }
    bytes.extend_from_slice(&frame(0x0, true, b"a"));
    let writer = {
        let mut t = t.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = t.write_all(&bytes);
        })
    };
    let during = usage(&s);
    assert_eq!(close_code(&drain(&t)), Some(1008));
    let _ = writer.join();
    drop(t);
    ledger.row(
        "200,000 one-byte continuation fragments",
        "close 1008 (rate limit)",
        before,
        during,
    );

    // A ping flood that never reads: over the rate limit, closed; nothing piles up.
    let before = usage(&s);
    let t = upgraded(&s, "id=pinger");
    let writer = {
        let mut t = t.try_clone().unwrap();
        std::thread::spawn(move || {
            let ping = frame(0x9, true, b"12345678");
            for _ in 0..100_000 {
                if t.write_all(&ping).is_err() {
                    return;
                }
            }
        })
    };
    let _ = writer.join();
    let during = usage(&s);
    t.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let got = drain(&t);
    assert_eq!(close_code(&got), Some(1008), "{} bytes", got.len());
    drop(t);
    ledger.row(
        "100,000 pings, never reading",
        "close 1008; nothing piles up",
        before,
        during,
    );

    bystander_still_served(&s, &mut by).await;
    let h = s.healthz().await;
    assert!(
        h["refused"]["rate_limit_close"].as_u64().unwrap() >= 2,
        "{h}"
    );
    back_to_baseline(&s, base, 4, 32 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_level_abuse_is_refused() {
    let s = Serve::start(&[]);
    let mut by = Client::json(&s.ws("id=by&channel=lobby")).await;
    let base = usage(&s);
    let mut ledger = Ledger::new(&s);

    // Channel flood: the 129th channel is refused (429), memory stays put.
    let mut flood = Client::json(&s.ws("id=flood")).await;
    for i in 0..128 {
        flood.ok("join", json!({"channel": format!("c{i}")})).await;
        if i % 50 == 49 {
            // Stay under the rate limit: this case is about the channel limit.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    let r = flood.call("join", json!({"channel": "one-too-many"})).await;
    assert_eq!(r["status"], 429, "{r}");
    let during = usage(&s);
    drop(flood);
    ledger.row(
        "joining channel after channel",
        "the 129th join gets 429",
        base,
        during,
    );

    // A send_to_all loop: the first burst goes out, then 429, then the sender is closed
    // (1008). The bystander receives at most the burst, never the whole loop.
    let before = usage(&s);
    let mut spam = Client::json(&s.ws("id=spam")).await;
    for i in 0..2000 {
        spam.send_json(&json!({"cmd": "send_to_all", "seqno": i, "data": "spam"}))
            .await;
    }
    let during = usage(&s);
    let (code, reason) = spam.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    let mut got = 0;
    while tokio::time::timeout(Duration::from_millis(300), by.recv_json())
        .await
        .is_ok()
    {
        got += 1;
    }
    assert!(
        (100..=260).contains(&got),
        "the bystander got {got} spam messages"
    );
    drop(spam);
    ledger.row(
        "a send_to_all loop of 2,000",
        &format!("burst, 429, close 1008; the bystander got {got}"),
        before,
        during,
    );

    // Acting on another client without rights: 403, the victim is untouched.
    let before = usage(&s);
    let mut a = Client::json(&s.ws("id=mallory")).await;
    let r = a.call("close_client", json!({"client_id": "by"})).await;
    assert_eq!(r["status"], 403);
    let r = a.call("get_info", json!({"client_id": "by"})).await;
    assert_eq!(r["status"], 403);
    ledger.row(
        "closing / reading another client",
        "403, the victim untouched",
        before,
        usage(&s),
    );

    // A spoofed fromClientId is replaced by the sender's real id.
    let mut p = Client::proto(&s.ws("id=spoofer")).await;
    p.send_proto(&SendMsg {
        cmd: 2001,
        from_client_id: "by".into(),
        channel: vec!["lobby".into()],
        msg: "hi".into(),
        ..Default::default()
    })
    .await;
    let m = match by.next().await {
        tokio_tungstenite::tungstenite::Message::Binary(b) => SendMsg::decode(b.as_ref()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(m.from_client_id, "spoofer");
    ledger.row(
        "a SendMsg with a spoofed fromClientId",
        "recipients see the real id",
        before,
        usage(&s),
    );

    // Stealing an id while its owner is online: 409, the owner keeps its connection.
    let stolen = tokio_tungstenite::connect_async(s.ws("id=by")).await;
    match stolen {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!("expected 409, got {:?}", other.map(|_| ())),
    }
    ledger.row(
        "connecting with an online client's id",
        "409, the owner stays",
        before,
        usage(&s),
    );

    // Oversized info: 413.
    let r = a
        .call("set_info", json!({"info": {"k": "v".repeat(5000)}}))
        .await;
    assert_eq!(r["status"], 413, "{r}");
    ledger.row("an info over 4 KiB", "413", before, usage(&s));

    drop((a, p));
    bystander_still_served(&s, &mut by).await;
    back_to_baseline(&s, base, 4, 32 * 1024);
}
