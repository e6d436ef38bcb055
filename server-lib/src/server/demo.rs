//! The demo page (`wsp serve --demo`, gows' `/index`): one self-contained HTML file compiled
//! into the binary, a browser client of the pool that speaks the documented JSON protocol.

use axum::http::header;
use axum::response::IntoResponse;

/// The page (`assets/demo.html`).
const PAGE: &str = include_str!("../../assets/demo.html");

/// `GET /` and `GET /index`.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Everything is inline and the page talks to the pool only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ws: wss:; img-src data:",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
