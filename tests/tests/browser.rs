//! The demo page in a real headless Chromium (`tests/python/browser.py` drives it over the
//! DevTools protocol): two pages exchange messages through `wsp serve --demo`, and a page from
//! another origin is refused unless that origin is allowed. `scripts/setup` installs Debian's
//! `chromium`; `WSP_CHROMIUM` names another binary.

use wsp_tests::{browser_demo, BrowserPeers, Serve};

#[tokio::test]
async fn two_browser_pages_talk_through_the_pool() {
    let pool = Serve::start(&["--demo"]);
    let BrowserPeers { allowing, .. } = browser_demo(&format!("http://{}", pool.addr), None);
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
