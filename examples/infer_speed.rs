//! Time per frame of the shipped model in tract, one thread, batch 1 and 16.
//! `cargo run --release --example infer_speed [MODEL.json [FRAMES]]`; `bench/run.sh --steps model`
//! runs it beside onnxruntime on the same machine.

use drsnd::infer::Model;
use drsnd::manifest::ModelFiles;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Counts heap allocations, to report how many one frame costs.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(n as u64, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/drsn-cw-cwru10.json".into());
    // Frames per batch size; small under valgrind.
    let per_batch: usize = match std::env::args().nth(2) {
        Some(v) => v.parse()?,
        None => 4000,
    };
    let batches: &[usize] = if per_batch < 1000 {
        &[1]
    } else {
        &[1, 4, 8, 16]
    };
    let files = ModelFiles::load(std::path::Path::new(&path))?;
    let n = files.manifest.frame_length;
    let frame: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for &batch in batches {
        let mut model = Model::load(&files, batch)?;
        let frames = vec![frame.as_slice(); batch];
        let mut out = Vec::new();
        for _ in 0..50 {
            out.clear();
            model.predict(&frames, &mut out)?;
        }
        let runs = per_batch / batch;
        let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        let t = Instant::now();
        for _ in 0..runs {
            out.clear();
            model.predict(&frames, &mut out)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / (runs * batch) as f64;
        let frames_run = (runs * batch) as f64;
        let allocs = (ALLOCS.load(Relaxed) - a0) as f64 / frames_run;
        let kib = (BYTES.load(Relaxed) - b0) as f64 / frames_run / 1024.0;
        println!("tract batch {batch}: {ms:.4} ms/frame, {allocs:.1} allocations ({kib:.0} KiB) per frame");
    }
    Ok(())
}
