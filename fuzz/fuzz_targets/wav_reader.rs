//! Any bytes as a WAV file: samples or a clear error, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::wav_reader(data));
