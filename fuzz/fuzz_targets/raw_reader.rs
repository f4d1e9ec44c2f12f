//! Raw PCM split anywhere decodes to the same samples as in one piece.
#![no_main]
use drsnd::config::RawFormat;
use drsnd::source::raw::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let format = if data[0] & 1 == 0 { RawFormat::F32le } else { RawFormat::S16le };
    let channels = 1 + (data[1] % 8) as usize;
    let step = 1 + data[2] as usize;
    let bytes = &data[3..];
    let (mut one, mut whole) = (Decoder::new(format, channels), Vec::new());
    one.feed(bytes, &mut whole);
    let (mut split, mut got, mut out) = (Decoder::new(format, channels), Vec::new(), Vec::new());
    for chunk in bytes.chunks(step) {
        split.feed(chunk, &mut out);
        got.extend_from_slice(&out);
    }
    assert_eq!(whole.len() % channels, 0);
    assert_eq!(whole.len(), got.len());
    assert!(whole.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()));
});
