//! `drsnd baseline learn`: a stream's learned normal from recordings,
//! with the daemon's framing, resampling, model and features, so the file
//! it writes is what the daemon would have learned live from the same
//! signal. Put it in `state-dir` as `<stream>.baseline.json`.

use super::classify::{load_model, predict_all, wav_frames, SensorArgs, Unusable};
use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::analyses::baseline::{
    add_window, calls_normal, learnable, Baseline, Features, Origin, MIN_ENVELOPE_WINDOWS,
};
use crate::analyses::physics::Physics;
use crate::analyses::Analysis;
use crate::report::{Frame, Report};
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
    /// With --units, --rpm and --bearing-orders: the baseline also learns
    /// the envelope's evidence on the healthy machine (as a stream with
    /// `units`, `rpm` and `bearing` learns it live).
    #[command(flatten)]
    sensor: SensorArgs,
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
    let sensor = match a.sensor.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("drsnd baseline learn: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
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
    let mut learned = Learned::new(Features::for_model(m));
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
        // Each file its own run of samples: the envelope's window restarts.
        let physics = match sensor {
            (Some(to_ms2), Some(ref e)) => {
                // ISO zones do not enter a baseline; the analysis wants some.
                let zones = crate::config::MonitorConfig::default().iso_zones;
                match Physics::new(m.sample_rate, to_ms2, zones, Some(e)) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("drsnd baseline learn: {e:#}");
                        return ExitCode::from(EX_USAGE);
                    }
                }
            }
            _ => None,
        };
        if let Err(e) = learned.add(&model, &frames, threads, a.signal_floor, physics) {
            eprintln!("drsnd baseline learn: {}: {e:#}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let d = learned.features.dims();
    let seconds = learned.frames as f64 * a.hop as f64 / m.sample_rate as f64;
    let from = a.files.iter().map(|f| f.display().to_string()).collect();
    let origin = Origin::of(m, a.hop, from);
    let written =
        Baseline::learn(&learned.rows, &learned.features, seconds, origin).and_then(|b| {
            let b = b
                .with_network_normal(learned.normal)
                .with_envelope(&learned.envelope);
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
            let envelope = match &b.envelope {
                Some(e) => format!(
                    "; envelope from {} windows (healthy z95 BPFO {:.1}, BPFI {:.1}, 2xBSF {:.1})",
                    e.windows, e.z95[0], e.z95[1], e.z95[2]
                ),
                None if sensor.1.is_some() => format!(
                    "; no envelope normal: {} envelope windows, {MIN_ENVELOPE_WINDOWS} needed",
                    learned.envelope.len()
                ),
                None => String::new(),
            };
            eprintln!(
                "drsnd baseline learn: {}: {} frames ({:.0} s of signal), {} features; {}{envelope}",
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

/// What the files give a baseline: the features of every frame the daemon
/// would learn from (signal, no clipped, non-finite or post-gap frame),
/// how many of them the network called normal, and the envelope's
/// windows among them.
struct Learned {
    features: Features,
    row: Vec<f64>,
    rows: Vec<f32>,
    frames: usize,
    normal: usize,
    envelope: Vec<[f32; 3]>,
}

impl Learned {
    fn new(features: Features) -> Self {
        Self {
            row: vec![0.0; features.dims()],
            features,
            rows: Vec::new(),
            frames: 0,
            normal: 0,
            envelope: Vec::new(),
        }
    }

    fn add(
        &mut self,
        model: &crate::infer::Model,
        frames: &[Frame],
        threads: usize,
        floor: f32,
        physics: Option<Physics>,
    ) -> Result<()> {
        let preds = predict_all(model, frames, threads)?;
        let labels = model.manifest.labels();
        let mut reports: Vec<Report> = preds
            .iter()
            .map(|p| Report {
                prediction: p.clone(),
                ..Report::default()
            })
            .collect();
        if let Some(mut physics) = physics {
            physics.run(frames, &mut reports)?;
        }
        for (f, r) in frames.iter().zip(&reports) {
            if !learnable(f, floor) {
                continue;
            }
            let p = &r.prediction;
            self.features
                .compute(&f.samples, &p.embedding, &mut self.row)?;
            self.rows.extend(self.row.iter().map(|&v| v as f32));
            self.frames += 1;
            self.normal += calls_normal(&labels, p) as usize;
            if let Some(Some(e)) = r.physical.and_then(|p| p.envelope) {
                add_window(&mut self.envelope, &e, usize::MAX);
            }
        }
        Ok(())
    }
}
