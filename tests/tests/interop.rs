//! Wire compatibility: a Python client generated from `sendmsg.proto` by Google's protobuf
//! exchanges frames with a real `wsp serve`. Needs `python3` with `protobuf`, `grpcio-tools`
//! and `websockets` (`scripts/test` installs them; `WSP_PYTHON` names another interpreter).

use std::process::Command;

use wsp_tests::Serve;

#[test]
fn python_protobuf_client_exchanges_sendmsg_frames() {
    let s = Serve::start(&[]);
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/interop.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&s.url)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "interop.py failed (install its modules with `pip install protobuf grpcio-tools websockets`):\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interop: ok"));
}

/// Runs a third-party client script against `wsp serve --compression` and checks it reported
/// compressed frames both ways.
fn third_party_compression(program: &str, script: &str, env: &[(&str, String)]) {
    let s = Serve::start(&["--compression"]);
    let out = Command::new(program)
        .arg(script)
        .arg(&s.url)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (scripts/setup installs it)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("compression: ok"),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_websockets_negotiates_and_exchanges_compressed_frames() {
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    third_party_compression(
        &python,
        concat!(env!("CARGO_MANIFEST_DIR"), "/python/compression.py"),
        &[],
    );
}

#[test]
fn node_ws_negotiates_and_exchanges_compressed_frames() {
    // `scripts/setup` installs `ws` into target/node; WSP_NODE_PATH names another node_modules.
    let modules = std::env::var("WSP_NODE_PATH").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/node/node_modules").into()
    });
    third_party_compression(
        "node",
        concat!(env!("CARGO_MANIFEST_DIR"), "/node/compression.js"),
        &[("NODE_PATH", modules)],
    );
}

/// The handshake a browser sends (Chrome and Firefox offer exactly this) gets the documented
/// answer; offers the server cannot honour are declined with a plain 101.
#[test]
fn browser_style_offers_are_answered_as_documented() {
    use std::io::{Read, Write};
    let s = Serve::start(&["--compression"]);
    let n = std::cell::Cell::new(0);
    let answer = |offer: &str| -> String {
        n.set(n.get() + 1);
        let mut tcp = std::net::TcpStream::connect(&s.addr).expect("connect");
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        write!(
            tcp,
            "GET /ws?id=b{} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n",
            n.get(),
            s.addr
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).expect("read");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("sec-websocket-extensions: ")
                    .map(|_| l.split_once(": ").unwrap().1.trim().to_string())
            })
            .unwrap_or_default()
    };
    let agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    // Chrome / Firefox.
    assert_eq!(answer("permessage-deflate; client_max_window_bits"), agreed);
    // Python websockets / Node ws style offers.
    // A client window below 15 is acknowledged (the server inflates with any window).
    assert_eq!(
        answer("permessage-deflate; client_max_window_bits=12; server_max_window_bits=15"),
        format!("{agreed}; client_max_window_bits=12")
    );
    // A smaller server window is honoured (the first offer of the list wins).
    assert_eq!(
        answer("permessage-deflate; server_max_window_bits=9, permessage-deflate"),
        format!("{agreed}; server_max_window_bits=9")
    );
    // What cannot be honoured is declined, never half-accepted.
    assert_eq!(answer("permessage-deflate; mystery_param"), "");
    assert_eq!(answer("x-webkit-deflate-frame"), "");
    assert_eq!(answer("permessage-deflate; client_max_window_bits=7"), "");
}
