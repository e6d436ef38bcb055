//! `wsp serve --tls-cert --tls-key`: wss:// and https:// on one port, verified against a
//! private CA; SIGHUP swaps the certificate for new connections without dropping open ones.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wsp_tests::{bin, make_certs, Serve};

fn peer(port: &str, ca: &Path) -> Value {
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python/tls_peer.py"))
        .args(["localhost", port])
        .arg(ca)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn wss_and_https_on_one_port_and_sighup_reloads_the_certificate() {
    let dir = std::env::temp_dir().join(format!("wsp-serve-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir, "1001", true);
    let s = Serve::start(&[
        "--tls-cert",
        dir.join("cert.pem").to_str().unwrap(),
        "--tls-key",
        dir.join("key.pem").to_str().unwrap(),
    ]);
    assert!(s.url.starts_with("wss://"), "{}", s.url);
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let ca = dir.join("ca.pem");

    // https://…/healthz on the same port.
    let first = peer(&port, &ca);
    assert_eq!(first["serial"], "1001");
    assert_eq!(first["healthz"]["tls"], true);

    // A wss:// client, verified against the CA, that stays connected across the reload.
    let url = format!("wss://localhost:{port}/ws?id=held&format=json");
    let mut held = Command::new(bin("wsp"))
        .args(["connect", &url, "--print", "--ca"])
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(held.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("welcome"), "{line}");

    // New certificate, same CA; SIGHUP.
    make_certs(&dir, "2002", false);
    let ok = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut serial = String::new();
    for _ in 0..50 {
        serial = peer(&port, &ca)["serial"].as_str().unwrap().to_string();
        if serial == "2002" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(serial, "2002", "new connections get the new certificate");

    // The connection made before the reload still works.
    let stdin = held.stdin.as_mut().unwrap();
    writeln!(stdin, r#"{{"cmd":"ping","seqno":"p"}}"#).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap(); // our request, echoed as an "out" record
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"pong\""), "{line}");
    drop(held.stdin.take());
    let _ = held.wait();

    // A plain ws:// handshake on the TLS port is not served.
    let plain = Command::new(bin("wsp"))
        .args(["connect", &format!("ws://127.0.0.1:{port}/ws"), "--print"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!plain.status.success());
    std::fs::remove_dir_all(&dir).ok();
}
