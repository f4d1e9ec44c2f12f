//! Issue 34, acceptance 6: the speed tracker, the envelope and the judgement
//! against the baseline's healthy envelope allocate nothing per frame after
//! warm-up. This binary's allocator counts the allocations of a thread that
//! asks it to; every other test runs as before.

use drsnd::analyses::baseline::EnvelopeNormal;
use drsnd::analyses::envelope::EnvelopeSpec;
use drsnd::analyses::physics::Physics;
use drsnd::analyses::speed::SpeedSpec;
use drsnd::analyses::Analysis;
use drsnd::config::Bearing;
use drsnd::report::{Flags, Frame, Report, SpeedSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: a thread being torn down has no locals left to count in.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations `f` made on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

const RATE: u32 = 12_000;
const HOP: usize = 512;
const FRAME: usize = 2048;
const RPM: f64 = 1746.0;
const BPFO: f64 = 3.5848;

/// A machine at `RPM` (1x and 2x lines) with an outer-race defect: impacts
/// at BPFO ringing at 3 kHz, in noise. Each interval is 1 % random, as a
/// rolling element's slip makes it: a strictly periodic train is a line
/// spectrum, which the envelope's whitening flattens away.
fn machine(seconds: f64) -> Vec<f32> {
    let n = (seconds * RATE as f64) as usize;
    let shaft = RPM / 60.0;
    let period = RATE as f64 / (BPFO * shaft);
    let mut seed = 7u64;
    let mut uniform = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut x: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 / RATE as f64;
            0.3 * (2.0 * std::f64::consts::PI * shaft * t).sin()
                + 0.15 * (4.0 * std::f64::consts::PI * shaft * t).sin()
                + 0.3 * uniform()
        })
        .collect();
    let mut at = 0.0;
    while (at as usize) < n {
        for (k, v) in x[at as usize..].iter_mut().take(120).enumerate() {
            let s = k as f64 / RATE as f64;
            *v += (-s * 800.0).exp() * (2.0 * std::f64::consts::PI * 3000.0 * s).sin();
        }
        at += period * (1.0 + 0.035 * uniform());
    }
    x.into_iter().map(|v| v as f32).collect()
}

fn frames(x: &[f32]) -> Vec<Frame> {
    (0..=(x.len() - FRAME) / HOP)
        .map(|k| {
            let samples = x[k * HOP..k * HOP + FRAME].to_vec();
            Frame {
                index: (k * HOP) as u64,
                end_ns: 0,
                rms: 0.1,
                peak: 1.0,
                std: 0.1,
                samples,
                flags: Flags::default(),
            }
        })
        .collect()
}

#[test]
fn speed_envelope_and_healthy_judgement_allocate_nothing_per_frame() {
    // Nominal 3 % off the machine's speed: the tracker must measure it.
    let nominal = RPM * 1.03;
    let spec = EnvelopeSpec {
        speed: SpeedSpec::new(nominal, None),
        bearing: Bearing {
            bpfo: BPFO,
            bpfi: 5.4152,
            bsf: 2.357,
            ftf: Some(0.39828),
            geometry: None,
        },
        band: None,
    };
    let mut physics = Physics::new(RATE, 9.80665, [1.4, 2.8, 4.5], Some(&spec)).expect("physics");
    let all = frames(&machine(40.0));
    let (warm, counted) = all.split_at(all.len() / 2);
    let mut reports = vec![Report::default(); 1];
    for f in warm {
        physics
            .run(std::slice::from_ref(f), &mut reports)
            .expect("warm-up");
    }
    // A healthy normal with no line of its own.
    let normal = EnvelopeNormal::learn(&[[1.0, 1.0, 1.0]; 8]).expect("8 windows");
    let (mut measured, mut named_outer) = (0, 0);
    let n = allocations_in(|| {
        for f in counted {
            physics
                .run(std::slice::from_ref(f), &mut reports)
                .expect("frame");
            let p = reports[0].physical.as_ref().expect("physical measures");
            if let Some(s) = p.speed {
                if s.source == SpeedSource::Signal && ((s.rpm as f64 - RPM) / RPM).abs() < 0.005 {
                    measured += 1;
                }
            }
            if let Some(Some(e)) = p.envelope.as_ref() {
                if normal.judge(e) == Some(drsnd::report::Family::Outer) {
                    named_outer += 1;
                }
            }
        }
    });
    assert_eq!(
        n,
        0,
        "{n} allocations over {} frames after warm-up",
        counted.len()
    );
    // The work was done: the speed found and the defect named.
    assert!(
        measured > counted.len() * 9 / 10,
        "speed within 0.5 % on {measured} of {} frames",
        counted.len()
    );
    let last = reports[0]
        .physical
        .as_ref()
        .and_then(|p| p.envelope.flatten());
    assert!(
        named_outer > counted.len() * 9 / 10,
        "outer race on {named_outer} of {} frames; the last window: {last:?}",
        counted.len()
    );
}
