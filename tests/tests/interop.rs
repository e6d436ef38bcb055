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
