//! `wsp connect --print` against a real `wsp serve`: join, send, receive, decode `cmdData`
//! with a user `.proto`; record and replay.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wsp_tests::{bin, Serve};

const CHAT_PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/chat.proto");

fn lines_of(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn print_mode_joins_sends_receives_and_decodes_cmd_data_with_a_user_proto() {
    let s = Serve::start(&[]);
    // Alice listens on `room`, decoding cmd 101 as chat.Message; she stops after 2 frames.
    let mut alice = Command::new(bin("wsp"))
        .args([
            "connect",
            &s.url,
            "--print",
            "--id",
            "alice",
            "--channel",
            "room",
        ])
        .args([
            "--proto",
            CHAT_PROTO,
            "--cmd-type",
            "101=chat.Message",
            "--count",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(alice.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let welcome: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(welcome["cmd"], "welcome", "{welcome}");
    assert_eq!(welcome["sendmsg"]["to_client_id"], "alice");

    // Bob joins a channel and sends a chat.Message {text: "hi", n: 5} to `room`.
    let mut bob = Command::new(bin("wsp"))
        .args(["connect", &s.url, "--print", "--id", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    {
        let mut stdin = bob.stdin.take().unwrap();
        writeln!(stdin, "/join lobby").unwrap();
        writeln!(
            stdin,
            r#"{{"cmd": 101, "channel": ["room"], "cmdData": "CgJoaRAF", "localId": "m1"}}"#
        )
        .unwrap();
    }
    let bob_out = bob.wait_with_output().unwrap();
    assert!(bob_out.status.success());
    let bob_frames = lines_of(&bob_out.stdout);
    let join_reply = bob_frames
        .iter()
        .find(|f| f["dir"] == "in" && f["cmd"] == "join")
        .expect("join reply");
    assert_eq!(join_reply["status"], 0, "{join_reply}");
    let ack = bob_frames
        .iter()
        .find(|f| f["dir"] == "in" && f["sendmsg"]["local_id"] == "m1")
        .expect("ack");
    assert_eq!(ack["sendmsg"]["msg"], r#"{"delivered":1}"#);
    assert!(
        bob_frames
            .iter()
            .any(|f| f["dir"] == "out" && f["type"] == "close"),
        "closed politely: {bob_frames:?}"
    );

    let mut rest = String::new();
    out.read_line(&mut rest).unwrap();
    let got: Value = serde_json::from_str(&rest).unwrap();
    assert_eq!(got["sendmsg"]["from_client_id"], "bob");
    assert_eq!(
        got["cmd_data"],
        serde_json::json!({"type": "chat.Message", "value": {"text": "hi", "n": 5}})
    );
    let status = alice.wait().unwrap();
    assert!(status.success());
}

#[test]
fn text_mode_speaks_json_and_record_replay_round_trips() {
    let s = Serve::start(&[]);
    let dir = std::env::temp_dir().join(format!("wsp-connect-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("session.jsonl");
    let out = Command::new(bin("wsp"))
        .args([
            "connect", &s.url, "--print", "--text", "--format", "json", "--record",
        ])
        .arg(&rec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            writeln!(
                c.stdin.take().unwrap(),
                r#"{{"cmd":"client_count","seqno":"q1"}}"#
            )?;
            c.wait_with_output()
        })
        .unwrap();
    let frames = lines_of(&out.stdout);
    let reply = frames
        .iter()
        .find(|f| f["json"]["seqno"] == "q1" && f["dir"] == "in")
        .expect("reply");
    assert_eq!(reply["json"]["data"]["count"], 1);
    let recorded = std::fs::read_to_string(&rec).unwrap();
    assert_eq!(
        recorded.lines().count(),
        frames.len(),
        "the record holds every frame"
    );

    // Replaying the recording sends the same request again.
    let start = Instant::now();
    let out = Command::new(bin("wsp"))
        .args([
            "connect", &s.url, "--print", "--format", "json", "--count", "2", "--replay",
        ])
        .arg(&rec)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    let frames = lines_of(&out.stdout);
    assert!(
        frames
            .iter()
            .any(|f| f["json"]["seqno"] == "q1" && f["dir"] == "in"),
        "{frames:?}"
    );
}

#[test]
fn a_refused_handshake_is_explained() {
    let s = Serve::start(&[]);
    let out = Command::new(bin("wsp"))
        .args(["connect", &format!("{}?format=xml", s.url), "--print"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 400") && err.contains("unknown format"),
        "{err}"
    );
}

#[test]
fn wss_with_a_private_ca_works_and_an_untrusted_certificate_is_refused() {
    let dir = std::env::temp_dir().join(format!("wsp-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    // A private CA, and a localhost certificate it signed.
    let script = "set -e
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=wsp-test-ca -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile leaf.ext -out cert.pem";
    let ok = Command::new("sh")
        .args(["-c", script])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sh");
    assert!(ok.success(), "openssl failed (apt-get install openssl)");
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut server = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/tls_echo.py"))
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let url = format!("wss://localhost:{}/", port.trim());
    let run = |extra: &[&str]| {
        let mut c = Command::new(bin("wsp"))
            .args(["connect", &url, "--print", "--text"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(c.stdin.take().unwrap(), "hello over tls").unwrap();
        c.wait_with_output().unwrap()
    };
    let out = run(&["--ca", ca.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = lines_of(&out.stdout);
    assert!(
        frames
            .iter()
            .any(|f| f["dir"] == "in" && f["text"] == "hello over tls"),
        "{frames:?}"
    );
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--insecure"]);
    assert!(out.status.success());
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn compression_is_offered_and_each_frame_says_how_it_travelled() {
    let s = Serve::start(&["--compression"]);
    let big = "status=ok ".repeat(2000);
    let mut c = Command::new(bin("wsp"))
        .args([
            "connect",
            &s.url,
            "--print",
            "--compression",
            "--id",
            "z",
            "--format",
            "json",
            "--count",
            "3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    writeln!(
        c.stdin.as_mut().unwrap(),
        r#"{{"cmd":"send_to_client","seqno":"1","data":{{"client_id":"z","data":"{big}"}}}}"#
    )
    .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    let frames = lines_of(&out.stdout);
    let pushed = frames
        .iter()
        .find(|f| f["dir"] == "in" && f["cmd"] == "message")
        .expect("the message to itself");
    assert_eq!(pushed["compressed"], true, "{pushed}");
    let wire = pushed["wire_size"].as_u64().unwrap();
    let size = pushed["size"].as_u64().unwrap();
    assert!(wire * 10 < size, "{wire} wire bytes for {size}");
    // Small frames (below --compression-min-size) travel plain.
    let welcome = frames.iter().find(|f| f["cmd"] == "welcome").unwrap();
    assert_eq!(welcome["compressed"], false, "{welcome}");
    assert!(welcome["wire_size"].as_u64().unwrap() > welcome["size"].as_u64().unwrap());
}

/// Issue 11: `--reconnect` rejoins its channels with `since` and recovers what it missed.
#[tokio::test]
async fn reconnect_recovers_the_missed_messages_exactly_once() {
    const KEY: &str = "connect-test-key-0123";
    let s = Serve::start(&["--history-size", "100", "--api-key", KEY]);
    let mut watch = Command::new(bin("wsp"))
        .args([
            "connect",
            &s.url,
            "--print",
            "--id",
            "watch",
            "--channel",
            "news",
        ])
        .args(["--format", "json", "--reconnect"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap(); // the welcome: joined
    let send = |n: u64| {
        let s = &s;
        async move {
            let r = s
                .api(
                    KEY,
                    "send_to_channel",
                    serde_json::json!({"channel": "news", "data": n}),
                )
                .await;
            assert_eq!(r["status"], 0, "{r}");
        }
    };
    for n in 1..=3 {
        send(n).await;
    }
    // The server drops it; three messages go out while it is away.
    s.api(
        KEY,
        "close_client",
        serde_json::json!({"client_id": "watch", "code": 4000}),
    )
    .await;
    for n in 4..=6 {
        send(n).await;
    }
    // Once it is back (the reply to its rejoin), one more, live.
    let mut payloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut recovered = None;
    while payloads.last() != Some(&7) {
        assert!(Instant::now() < deadline, "got {payloads:?}");
        line.clear();
        out.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let j = &v["json"];
        if j["cmd"] == "join" && j["seqno"] == "wsp-recover:news" {
            recovered = Some(j["data"]["recovered"].clone());
            send(7).await;
        }
        if j["cmd"] == "message" {
            payloads.push(j["data"]["data"].as_u64().unwrap());
        }
    }
    assert_eq!(recovered, Some(Value::Bool(true)));
    assert_eq!(payloads, (1..=7).collect::<Vec<_>>());
    drop(watch.stdin.take());
    let _ = watch.kill();
    let _ = watch.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("recovered news (+3)"), "{err}");
}
