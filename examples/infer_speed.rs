//! Time per frame of the shipped model in tract, one thread, batch 1 and 16.
//! `cargo run --release --example infer_speed [MODEL.json]`; bench/model_speed.sh
//! runs it beside onnxruntime on the same machine.

use drsnd::infer::Model;
use drsnd::manifest::ModelFiles;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/drsn-cw-cwru10.json".into());
    let files = ModelFiles::load(std::path::Path::new(&path))?;
    let n = files.manifest.frame_length;
    let frame: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for batch in [1usize, 4, 8, 16] {
        let mut model = Model::load(&files, batch)?;
        let frames = vec![frame.as_slice(); batch];
        let mut out = Vec::new();
        for _ in 0..50 {
            out.clear();
            model.predict(&frames, &mut out)?;
        }
        let runs = 4000 / batch;
        let t = Instant::now();
        for _ in 0..runs {
            out.clear();
            model.predict(&frames, &mut out)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / (runs * batch) as f64;
        println!("tract batch {batch}: {ms:.4} ms/frame");
    }
    Ok(())
}
