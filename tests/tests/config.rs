//! `wsp serve` settings from a TOML file and from `WSP_*` environment variables, with flags
//! winning over both.

use std::process::{Command, Stdio};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use wsp_tests::{bin, Client, Serve};

#[tokio::test]
async fn toml_file_settings_apply_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("wsp-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wsp.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\nmax_message_size = 2048\nwelcome_message = \"from the file\"\nheartbeat_timeout = \"45s\"\n",
    )
    .unwrap();
    // `--listen 127.0.0.1:0` (given by Serve::start) wins over the file's port 1.
    let s = Serve::start(&[
        "--config",
        file.to_str().unwrap(),
        "--welcome-message",
        "from the flag",
    ]);
    let mut c = Client::json(&s.ws("")).await;
    match c.next().await {
        Message::Text(t) => assert_eq!(t.as_str(), "from the flag"),
        other => panic!("expected the welcome message, got {other:?}"),
    }
    // The file's other settings still apply: 2048-byte limit.
    c.ws.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    assert_eq!(c.expect_close().await.0, 1009);
}

#[tokio::test]
async fn welcome_and_limits_come_from_the_file() {
    let dir = std::env::temp_dir().join(format!("wsp-config-test2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wsp.toml");
    std::fs::write(
        &file,
        "max_message_size = 2048\nwelcome_message = \"{\\\"hello\\\":\\\"file\\\"}\"\n",
    )
    .unwrap();
    let s = Serve::start(&["--config", file.to_str().unwrap()]);
    let mut c = Client::json(&s.ws("")).await;
    assert_eq!(c.recv_json().await, json!({"hello": "file"}));
    c.ws.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    assert_eq!(
        c.expect_close().await.0,
        1009,
        "max_message_size from the file"
    );
}

#[test]
fn environment_variables_and_bad_files_are_reported() {
    // A bad value in the environment is named.
    let out = Command::new(bin("wsp"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WSP_SLOW_POLICY", "explode")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown slow-reader policy"));
    // An unknown key in the file is named, with the file.
    let dir = std::env::temp_dir().join(format!("wsp-config-test3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "max_mesage_size = 1\n").unwrap();
    let out = Command::new(bin("wsp"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("max_mesage_size"),
        "{err}"
    );
    // An impossible combination is refused before binding.
    let out = Command::new(bin("wsp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ping-interval",
            "40s",
            "--heartbeat-timeout",
            "30s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("heartbeat_timeout must be longer than ping_interval"));
}

#[tokio::test]
async fn env_welcome_message_applies() {
    let mut child = Command::new(bin("wsp"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WSP_WELCOME_MESSAGE", "{\"from\":\"env\"}")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    let mut c = Client::json(&url).await;
    assert_eq!(c.recv_json().await, json!({"from": "env"}));
    let _ = child.kill();
    let _ = child.wait();
}
