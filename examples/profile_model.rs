//! Where tract spends a frame: each node of the optimised batch-1 plan timed
//! over many runs, summed by op kind. `cargo run --release --example
//! profile_model [MODEL.onnx] [PERIOD_MS]`; bench/run.sh puts its table in
//! BENCHMARKS.md. With a period, one run starts every PERIOD_MS (42.7 is
//! real time at hop 512), so the profile shows a frame with cold caches, as
//! the daemon sees it, instead of a tight loop.

use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/drsn-cw-cwru10.onnx".into());
    let period: Option<f64> = std::env::args().nth(2).map(|p| p.parse()).transpose()?;
    let plan = tract_onnx::onnx()
        .model_for_path(&path)?
        .with_input_fact(0, f32::fact([1, 1, 2048]).into())?
        .into_optimized()?
        .into_runnable()?;
    let frame: Vec<f32> = (0..2048)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let input = tract_ndarray::Array3::from_shape_vec((1, 1, 2048), frame)?.into_tensor();
    let mut state = TypedSimpleState::new(&plan)?;
    let runs = if period.is_some() { 600 } else { 3000 };
    let mut next = Instant::now();
    let mut per_node: Vec<f64> = vec![0.0; plan.model().nodes().len()];
    let mut total = 0.0;
    for _ in 0..runs {
        if let Some(ms) = period {
            next += std::time::Duration::from_secs_f64(ms / 1e3);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let t0 = Instant::now();
        state.run_plan_with_eval(
            tvec![input.clone().into_tvalue()],
            |ctx, st, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                per_node[node.id] += t.elapsed().as_secs_f64();
                out
            },
        )?;
        total += t0.elapsed().as_secs_f64();
    }
    let total = total * 1e3 / runs as f64;
    let mut by_op: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for node in plan.model().nodes() {
        let e = by_op.entry(node.op().name().to_string()).or_default();
        e.0 += 1;
        e.1 += per_node[node.id] * 1e3 / runs as f64;
    }
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let in_ops: f64 = rows.iter().map(|r| r.1 .1).sum();
    println!(
        "nodes: {}  ms/frame: {total:.4} (in ops {in_ops:.4}, framework {:.4})",
        plan.model().nodes().len(),
        total - in_ops
    );
    println!("| op | nodes | ms/frame | share |");
    println!("|---|---:|---:|---:|");
    for (op, (n, ms)) in rows {
        println!("| {op} | {n} | {ms:.4} | {:.0} % |", 100.0 * ms / total);
    }
    let mut nodes: Vec<_> = plan.model().nodes().iter().collect();
    nodes.sort_by(|a, b| per_node[b.id].total_cmp(&per_node[a.id]));
    println!("\nslowest nodes:");
    for n in nodes.iter().take(12) {
        println!(
            "{:.4} ms  {} {}",
            per_node[n.id] * 1e3 / runs as f64,
            n.op().name(),
            n.name
        );
    }
    Ok(())
}
