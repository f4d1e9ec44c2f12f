//! The checks behind each fuzz target, shared by the targets (fuzz/fuzz_targets/)
//! and by tests/it/fuzz_corpus.rs, which replays the kept corpora in every test run.
//! Each takes arbitrary bytes and panics only on a broken promise.
#![allow(dead_code, unused_imports)]

use drsnd::config::RawFormat;
use drsnd::frame::{Assembler, Conditioning};
use drsnd::source::raw::Decoder;

/// Any text as drsnd.toml: a config or an error naming the key, never a panic.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = drsnd::config::Config::parse(text, "fuzz.toml") {
            // Every error names the file it came from.
            assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }
}

/// Any client line: a filter or an error message, never a panic.
pub fn client_command(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let streams = ["pump".to_string(), "motor".to_string()];
    match drsnd::protocol::Filter::parse(&line, &streams) {
        Ok(f) => {
            // A filter only ever names streams that exist.
            for s in f.streams.iter().flatten() {
                assert!(streams.contains(s), "accepted unknown stream {s}");
            }
        }
        Err(msg) => assert!(msg.starts_with("bad command"), "{msg}"),
    }
}

/// Any bytes as a WAV file: samples or a clear error, never a panic or a hang.
pub fn wav_reader(data: &[u8]) {
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
}

/// Raw PCM split anywhere decodes to the same samples as in one piece.
pub fn raw_reader(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let format = if data[0] & 1 == 0 {
        RawFormat::F32le
    } else {
        RawFormat::S16le
    };
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
    assert!(whole
        .iter()
        .zip(&got)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

const RATES: [u32; 8] = [
    8_000, 11_025, 12_000, 16_000, 44_100, 48_000, 96_000, 192_000,
];
/// Any samples (NaN, infinities, denormals, huge values), any rate, hop and
/// chunking: the frames are the same as from one big chunk, and every frame
/// statistic is finite.
pub fn assembler(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let rate = RATES[data[0] as usize % RATES.len()];
    let hop = 1 + (u16::from_le_bytes([data[1], data[2]]) as usize % 2048);
    let step = 1 + data[3] as usize * 8;
    let samples: Vec<f32> = data[4..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // Repeat so that several frames come out even from short inputs.
    let x: Vec<f32> = samples
        .iter()
        .copied()
        .cycle()
        .take(samples.len().max(1) * 8 + rate as usize / 2)
        .collect();
    if samples.is_empty() {
        return;
    }
    let cond = Conditioning {
        source_rate: rate,
        model_rate: 12_000,
        gain: 1.0,
        clip_level: 1.0,
    };
    let (Ok(mut a), Ok(mut b)) = (
        Assembler::new(cond, 2048, hop),
        Assembler::new(cond, 2048, hop),
    ) else {
        return;
    };
    let (mut one, mut many) = (Vec::new(), Vec::new());
    a.push(&x, 1_000_000_000, &mut one).expect("push");
    for (i, c) in x.chunks(step).enumerate() {
        b.push(c, 1_000_000_000 + i as u64, &mut many)
            .expect("push");
    }
    assert_eq!(one.len(), many.len());
    for (p, q) in one.iter().zip(&many) {
        assert_eq!(p.index, q.index);
        assert_eq!(p.flags, q.flags);
        assert!(p
            .samples
            .iter()
            .zip(&q.samples)
            .all(|(u, v)| u.to_bits() == v.to_bits()));
        assert!(
            p.rms.is_finite() && p.peak.is_finite() && p.std.is_finite(),
            "{} {} {}",
            p.rms,
            p.peak,
            p.std
        );
        assert!(p.samples.iter().all(|v| v.is_finite()));
    }
}
