//! Any samples (NaN, infinities, denormals, huge values), any rate, hop and
//! chunking: the frames are the same as from one big chunk, and every frame
//! statistic is finite.
#![no_main]
use drsnd::frame::{Assembler, Conditioning};
use libfuzzer_sys::fuzz_target;

const RATES: [u32; 8] = [8_000, 11_025, 12_000, 16_000, 44_100, 48_000, 96_000, 192_000];

fuzz_target!(|data: &[u8]| {
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
    let x: Vec<f32> = samples.iter().copied().cycle().take(samples.len().max(1) * 8 + rate as usize / 2).collect();
    if samples.is_empty() {
        return;
    }
    let cond = Conditioning { source_rate: rate, model_rate: 12_000, gain: 1.0, clip_level: 1.0 };
    let (Ok(mut a), Ok(mut b)) = (Assembler::new(cond, 2048, hop), Assembler::new(cond, 2048, hop)) else {
        return;
    };
    let (mut one, mut many) = (Vec::new(), Vec::new());
    a.push(&x, 1_000_000_000, &mut one).expect("push");
    for (i, c) in x.chunks(step).enumerate() {
        b.push(c, 1_000_000_000 + i as u64, &mut many).expect("push");
    }
    assert_eq!(one.len(), many.len());
    for (p, q) in one.iter().zip(&many) {
        assert_eq!(p.index, q.index);
        assert_eq!(p.flags, q.flags);
        assert!(p.samples.iter().zip(&q.samples).all(|(u, v)| u.to_bits() == v.to_bits()));
        assert!(p.rms.is_finite() && p.peak.is_finite() && p.std.is_finite(), "{} {} {}", p.rms, p.peak, p.std);
        assert!(p.samples.iter().all(|v| v.is_finite()));
    }
});
