//! What one frame costs when frames come at real-time pace, as in the
//! daemon: one call every hop (42.7 ms at 12 kHz, hop 512), not in a tight
//! loop where caches stay warm. Several ONNX files (same contract as the
//! shipped model) take turns, call by call, so that they are compared in one
//! run under the same machine conditions.
//!
//! `cargo run --release --example paced_infer -- [--seconds S] [--period-ms P] [--repeat N] A.onnx [B.onnx ...]`
//! prints, per model (and per call of `--repeat N` back-to-back calls), the median and mean thread CPU time and wall time of a call.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn load(path: &str) -> Result<TypedSimpleState> {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .with_context(|| format!("{path}: cannot load"))?
        .with_input_fact(0, f32::fact([1, 1, 2048]).into())?
        .into_optimized()?
        .into_runnable()?;
    TypedSimpleState::new(&plan)
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v.iter().sum::<f64>() / v.len() as f64)
}

fn main() -> Result<()> {
    let mut seconds = 60.0;
    let mut period_ms = 512.0 / 12.0;
    let mut repeat = 1;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().context("--seconds")?.parse()?,
            "--period-ms" => period_ms = args.next().context("--period-ms")?.parse()?,
            "--repeat" => repeat = args.next().context("--repeat")?.parse()?,
            _ => paths.push(a),
        }
    }
    if paths.is_empty() {
        bail!("usage: paced_infer [--seconds S] [--period-ms P] MODEL.onnx...");
    }
    let mut states = paths.iter().map(|p| load(p)).collect::<Result<Vec<_>>>()?;
    let frame: Vec<f32> = (0..2048)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let input = tract_ndarray::Array3::from_shape_vec((1, 1, 2048), frame)?.into_tensor();
    let period = Duration::from_secs_f64(period_ms / 1000.0);
    let calls = (seconds * 1000.0 / period_ms) as usize;
    let rows = states.len() * repeat;
    let mut cpu = vec![Vec::new(); rows];
    let mut wall = vec![Vec::new(); rows];
    let mut next = Instant::now();
    for k in 0..calls + 10 * states.len() {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let i = k % states.len();
        for r in 0..repeat {
            let (c0, t0) = (thread_cpu_ns(), Instant::now());
            states[i].run(tvec![input.clone().into_tvalue()])?;
            let (c1, t1) = (thread_cpu_ns(), Instant::now());
            if k >= 10 * states.len() {
                cpu[i * repeat + r].push((c1 - c0) as f64 / 1e6);
                wall[i * repeat + r].push((t1 - t0).as_secs_f64() * 1e3);
            }
        }
    }
    println!("| model | calls | cpu ms median | cpu ms mean | wall ms median | wall ms mean |");
    println!("|---|---:|---:|---:|---:|---:|");
    for i in 0..rows {
        let (cm, ca) = stats(&mut cpu[i]);
        let (wm, wa) = stats(&mut wall[i]);
        let n = cpu[i].len();
        let (p, r) = (&paths[i / repeat], i % repeat + 1);
        println!("| {p} (call {r}) | {n} | {cm:.3} | {ca:.3} | {wm:.3} | {wa:.3} |");
    }
    Ok(())
}
