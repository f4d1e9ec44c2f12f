//! Raw PCM split anywhere decodes to the same samples as in one piece.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::raw_reader(data));
