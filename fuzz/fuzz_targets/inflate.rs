#![no_main]
//! One compressed message body: inflating stays under the limit.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::inflate(data));
