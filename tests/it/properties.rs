//! Properties of the sample path, over inputs proptest makes up: however
//! samples arrive (chunk sizes, ring wrap-around, byte splits), the same
//! samples give the same frames, and every number that leaves is finite.

use drsnd::config::RawFormat;
use drsnd::frame::{Assembler, Conditioning, Frame};
use drsnd::ring::{ring, Segment};
use drsnd::source::raw::Decoder;
use proptest::prelude::*;

const RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000,
];

/// Samples as a sensor might send them, with the awkward values included.
fn sample() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -2.0f32..2.0,
        1 => prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(1e-40f32), // denormal
            Just(-1e-42f32),
            Just(3e38f32),
            Just(-3e38f32),
            Just(0.0f32),
        ],
    ]
}

fn frames(rate: u32, hop: usize, x: &[f32], chunks: &[usize]) -> Vec<Frame> {
    let cond = Conditioning {
        source_rate: rate,
        model_rate: 12_000,
        gain: 1.0,
        clip_level: 1.5,
    };
    let mut a = Assembler::new(cond, 2048, hop).expect("assembler");
    let mut out = Vec::new();
    let mut rest = x;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if chunks.is_empty() {
            rest.len()
        } else {
            chunks[i % chunks.len()].min(rest.len())
        };
        a.push(&rest[..n], 1_000_000 + i as u64, &mut out)
            .expect("push");
        rest = &rest[n..];
        i += 1;
    }
    out
}

fn same(a: &[Frame], b: &[Frame]) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (p, q) in a.iter().zip(b) {
        prop_assert_eq!(p.index, q.index);
        prop_assert_eq!(p.flags, q.flags);
        prop_assert!(p
            .samples
            .iter()
            .zip(&q.samples)
            .all(|(u, v)| u.to_bits() == v.to_bits()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chunking_never_changes_the_frames(
        rate in prop::sample::select(RATES.to_vec()),
        hop in prop_oneof![Just(1usize), Just(2048usize), 1usize..4096],
        base in prop::collection::vec(sample(), 1..512),
        chunks in prop::collection::vec(1usize..5000, 1..8),
    ) {
        // At least a few frames' worth at any rate.
        let len = (rate as usize * 2048 / 12_000) * 2 + 4096;
        let x: Vec<f32> = base.iter().copied().cycle().take(len).collect();
        let whole = frames(rate, hop, &x, &[]);
        prop_assert!(!whole.is_empty());
        let split = frames(rate, hop, &x, &chunks);
        same(&whole, &split)?;
        for f in &whole {
            prop_assert!(f.samples.iter().all(|v| v.is_finite()));
            prop_assert!(f.rms.is_finite() && f.peak.is_finite() && f.std.is_finite());
        }
        // Any NaN or infinity in the input shows up as a flagged frame.
        if x.iter().any(|v| !v.is_finite()) {
            prop_assert!(whole.iter().any(|f| f.flags.nonfinite));
        }
    }

    #[test]
    fn the_ring_hands_over_every_sample_across_wrap_around_or_counts_it(
        capacity in 1usize..300,
        pushes in prop::collection::vec((1usize..200, any::<bool>()), 1..60),
    ) {
        let (mut w, mut r) = ring(capacity);
        let (mut next, mut got, mut gaps) = (0u32, Vec::new(), 0u64);
        let drain = |r: &mut drsnd::ring::RingReader, got: &mut Vec<f32>, gaps: &mut u64| {
            r.drain(1000.0, usize::MAX, |s| match s {
                Segment::Samples(x, _) => got.extend_from_slice(x),
                Segment::Gap(n) => *gaps += n,
            });
        };
        for (n, read_now) in &pushes {
            w.push(*n, (next..next + *n as u32).map(|v| v as f32), 0);
            next += *n as u32;
            if *read_now {
                drain(&mut r, &mut got, &mut gaps);
            }
        }
        drain(&mut r, &mut got, &mut gaps);
        let overrun = w.counters().overrun_samples.load(std::sync::atomic::Ordering::Relaxed);
        // Nothing vanishes: delivered + counted as dropped = pushed.
        prop_assert_eq!(got.len() as u64 + overrun, next as u64);
        prop_assert_eq!(gaps, overrun);
        // What is delivered is in order.
        prop_assert!(got.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn raw_bytes_split_anywhere_decode_the_same(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        channels in 1usize..9,
        s16 in any::<bool>(),
        splits in prop::collection::vec(1usize..40, 1..10),
    ) {
        let format = if s16 { RawFormat::S16le } else { RawFormat::F32le };
        let mut whole = Vec::new();
        Decoder::new(format, channels).feed(&bytes, &mut whole);
        let (mut d, mut got, mut out) = (Decoder::new(format, channels), Vec::new(), Vec::new());
        let mut rest = &bytes[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits[i % splits.len()].min(rest.len());
            d.feed(&rest[..n], &mut out);
            got.extend_from_slice(&out);
            rest = &rest[n..];
            i += 1;
        }
        prop_assert_eq!(whole.len() % channels, 0);
        prop_assert_eq!(whole.len(), got.len());
        prop_assert!(whole.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
