#![no_main]
//! Client bytes read by a server connection.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::frames(data, false));
