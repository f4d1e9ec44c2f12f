//! Any samples (NaN, infinities, denormals, huge values), any rate, hop and
//! chunking: the frames are the same as from one big chunk, and every frame
//! statistic is finite.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::assembler(data));
