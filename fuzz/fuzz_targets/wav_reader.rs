//! Any bytes as a WAV file: samples or a clear error, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = hound::WavReader::new(std::io::Cursor::new(data)) else {
        return;
    };
    if drsnd::source::wav::check_spec(&r.spec()).is_err() {
        return;
    }
    let mut out = Vec::new();
    let mut total = 0usize;
    while let Ok(true) = drsnd::source::wav::read_block(&mut r, &mut out, 4096) {
        total += out.len();
        // Never more samples than the bytes could hold.
        assert!(total <= data.len());
    }
});
