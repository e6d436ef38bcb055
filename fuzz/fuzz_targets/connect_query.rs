#![no_main]
//! The handshake's query string and Sec-WebSocket-Protocol (split at the first NUL byte).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, proto) = text.split_once('\0').unwrap_or((&text, ""));
    wsp_server::fuzzing::connect_query(query, proto);
});
