//! The demo page in a real headless Chromium (`tests/python/browser.py` drives it over the
//! DevTools protocol): two pages exchange messages through `wsp serve --demo`, and a page from
//! another origin is refused unless that origin is allowed. `scripts/setup` installs Debian's
//! `chromium`; `WSP_CHROMIUM` names another binary.

use std::process::Command;

use wsp_tests::Serve;

#[tokio::test]
async fn two_browser_pages_talk_through_the_pool() {
    let pool = Serve::start(&["--demo"]);
    let foreign = Serve::start(&["--demo"]);
    let foreign_origin = format!("http://{}", foreign.addr);
    let allowing = Serve::start(&["--allow-origin", &foreign_origin]);
    let chromium = std::env::var("WSP_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let python = std::env::var("WSP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/browser.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .arg(&chromium)
        .arg(format!("http://{}", pool.addr))
        .arg(&foreign_origin)
        .arg(&allowing.url);
    if let Ok(shot) = std::env::var("WSP_DEMO_SCREENSHOT") {
        cmd.arg(shot);
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
    // The pool refused eve's handshake for her origin, and the allowing pool took it.
    let refused = pool.get("/metrics").await.1;
    assert!(
        refused.contains(r#"result="403"} 1"#),
        "no 403 handshake counted:\n{refused}"
    );
    let allowed = allowing.get("/metrics").await.1;
    assert!(
        allowed.contains(r#"result="ok"} 1"#),
        "the allowing pool did not accept eve:\n{allowed}"
    );
}
