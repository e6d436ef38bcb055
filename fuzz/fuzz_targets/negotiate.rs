#![no_main]
//! A Sec-WebSocket-Extensions offer; the answer must satisfy a client.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::negotiate(&String::from_utf8_lossy(data)));
