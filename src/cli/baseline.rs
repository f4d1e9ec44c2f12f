//! `drsnd baseline learn`: a stream's learned normal from recordings,
//! with the daemon's framing, resampling, model and features, so the file
//! it writes is what the daemon would have learned live from the same
//! signal. Put it in `state-dir` as `<stream>.baseline.json`.

use super::classify::{load_model, predict_all, wav_frames, Unusable};
use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::analyses::baseline::{calls_normal, learnable, Baseline, Features, Origin};
use crate::report::Frame;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    cmd: BaselineCmd,
}

#[derive(Subcommand)]
enum BaselineCmd {
    /// Learn a baseline from recordings of the machine running normally.
    Learn(LearnArgs),
}

#[derive(Args)]
pub struct LearnArgs {
    /// WAV recordings of normal running, in time order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The baseline file to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    model: Option<PathBuf>,
    /// The daemon's hop (its `hop`), samples at the model rate.
    #[arg(long, default_value_t = 512)]
    hop: usize,
    #[arg(long, default_value_t = 0)]
    channel: usize,
    /// Frames below this standard deviation are no signal and not learned
    /// (the daemon's `[monitor] signal-floor`; 0: none, a dead sensor is
    /// judged from the signal itself).
    #[arg(long, default_value_t = 0.0)]
    signal_floor: f32,
    #[arg(long)]
    threads: Option<usize>,
}

pub fn baseline(a: &BaselineArgs) -> ExitCode {
    match &a.cmd {
        BaselineCmd::Learn(l) => learn(l),
    }
}

fn learn(a: &LearnArgs) -> ExitCode {
    if a.hop == 0 {
        eprintln!("drsnd baseline learn: --hop 0: the hop must be at least 1 sample");
        return ExitCode::from(EX_USAGE);
    }
    let model = match load_model(a.model.as_deref(), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("drsnd baseline learn: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let m = &model.manifest;
    let mut features = Features::for_model(m);
    let d = features.dims();
    let mut rows = Vec::new();
    let mut row = vec![0.0; d];
    let (mut frames_in, mut normal) = (0usize, 0usize);
    for path in &a.files {
        let frames = match wav_frames(path, a.channel, &model, a.hop) {
            Ok(f) => f,
            Err(Unusable::Unreadable(e)) => {
                eprintln!("drsnd baseline learn: {e:#}");
                return ExitCode::from(EX_DATAERR);
            }
            Err(Unusable::NoFrames(why)) => {
                eprintln!("drsnd baseline learn: {why}");
                return ExitCode::from(EX_DATAERR);
            }
        };
        let added = learnable_rows(
            &model,
            &frames,
            threads,
            a.signal_floor,
            &mut features,
            &mut row,
            &mut rows,
        );
        match added {
            Ok((n, k)) => (frames_in, normal) = (frames_in + n, normal + k),
            Err(e) => {
                eprintln!("drsnd baseline learn: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let seconds = frames_in as f64 * a.hop as f64 / m.sample_rate as f64;
    let from = a.files.iter().map(|f| f.display().to_string()).collect();
    let origin = Origin::of(m, a.hop, from);
    let written = Baseline::learn(&rows, &features, seconds, origin).and_then(|b| {
        let b = b.with_network_normal(normal);
        b.save(&a.out)?;
        Ok(b)
    });
    match written {
        Ok(b) => {
            let parts: Vec<String> = b
                .parts
                .iter()
                .map(|p| {
                    format!(
                        "{} (shrinkage {}, limit {:.2})",
                        p.name, p.shrinkage, p.limit
                    )
                })
                .collect();
            eprintln!(
                "drsnd baseline learn: {}: {} frames ({:.0} s of signal), {} features; {}",
                a.out.display(),
                b.frames,
                b.seconds,
                d,
                parts.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drsnd baseline learn: {e:#}");
            ExitCode::from(EX_DATAERR)
        }
    }
}

/// Appends the features of `frames` the daemon would learn from (signal,
/// no clipped, non-finite or post-gap frame); how many, and how many of
/// them the network called normal.
fn learnable_rows(
    model: &crate::infer::Model,
    frames: &[Frame],
    threads: usize,
    floor: f32,
    features: &mut Features,
    row: &mut [f64],
    rows: &mut Vec<f32>,
) -> Result<(usize, usize)> {
    let preds = predict_all(model, frames, threads)?;
    let labels = model.manifest.labels();
    let (mut n, mut normal) = (0, 0);
    for (f, p) in frames.iter().zip(&preds) {
        if !learnable(f, floor) {
            continue;
        }
        features.compute(&f.samples, &p.embedding, row)?;
        rows.extend(row.iter().map(|&v| v as f32));
        n += 1;
        normal += calls_normal(&labels, p) as usize;
    }
    Ok((n, normal))
}
