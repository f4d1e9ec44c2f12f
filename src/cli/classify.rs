//! `drsnd classify` (offline, every core) and `drsnd check`. Both use the
//! daemon's own frame assembler and model code, so their labels are the
//! daemon's labels for the same frames.

use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::analyses::envelope::EnvelopeSpec;
use crate::config::{Config, DEFAULT_MODEL_NAME};
use crate::frame::{Assembler, Conditioning, Frame};
use crate::infer::{Model, Prediction};
use crate::manifest::{Labels, ModelFiles};
use crate::protocol::{FrameMsg, Message};
use crate::source::wav;
use anyhow::{Context, Result};
use clap::Args;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ClassifyArgs {
    /// WAV files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 512)]
    pub hop: usize,
    /// Channel to read from multi-channel files.
    #[arg(long, default_value_t = 0)]
    pub channel: usize,
    /// One JSON frame message per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// What the samples measure: adds velocity RMS, ISO zone, crest and
    /// kurtosis to every --json frame, as the daemon does for such a source.
    #[arg(long, value_parser = ["g", "m/s2", "V"])]
    pub units: Option<String>,
    /// With --units V: the sensor's sensitivity in mV/g.
    #[arg(long)]
    pub sensitivity: Option<f64>,
    /// Shaft speed, rev/min: with --bearing-orders and --units, adds the
    /// envelope evidence to every --json frame.
    #[arg(long)]
    pub rpm: Option<f64>,
    /// The bearing's defect orders BPFO,BPFI,BSF[,FTF] (multiples of shaft speed).
    #[arg(long, value_delimiter = ',')]
    pub bearing_orders: Option<Vec<f64>>,
    /// A fixed band to demodulate, LOW,HIGH in Hz (default: chosen per window).
    #[arg(long, value_delimiter = ',')]
    pub envelope_band: Option<Vec<f64>>,
    /// A baseline (`drsnd baseline learn`): adds `anomaly` to every --json frame.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

impl ClassifyArgs {
    /// Sensor units to m/s², or why the units cannot be used.
    fn to_ms2(&self) -> Result<Option<f64>, String> {
        use crate::config::STANDARD_G;
        match (self.units.as_deref(), self.sensitivity) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("--sensitivity needs --units V".into()),
            (Some("g"), None) => Ok(Some(STANDARD_G)),
            (Some("m/s2"), None) => Ok(Some(1.0)),
            (Some("V"), Some(s)) if s.is_finite() && s > 0.0 => Ok(Some(STANDARD_G * 1000.0 / s)),
            (Some("V"), Some(s)) => Err(format!("--sensitivity {s}: not a sensitivity in mV/g")),
            (Some("V"), None) => Err("--units V needs --sensitivity (mV/g)".into()),
            (Some(u), Some(_)) => Err(format!("--sensitivity is for --units V, not {u}")),
            (Some(u), None) => Err(format!("--units {u}: want g, m/s2 or V")),
        }
    }
}

impl ClassifyArgs {
    /// The envelope settings, checked as the config checks them.
    fn envelope(&self) -> Result<Option<EnvelopeSpec>, String> {
        use crate::config::{check_band, check_rpm, Bearing};
        let (rpm, orders) = match (self.rpm, self.bearing_orders.as_deref()) {
            (None, None) if self.envelope_band.is_some() => {
                return Err("--envelope-band needs --rpm and --bearing-orders".into())
            }
            (None, None) => return Ok(None),
            (Some(_), None) => return Err("--rpm needs --bearing-orders".into()),
            (None, Some(_)) => return Err("--bearing-orders needs --rpm".into()),
            (Some(r), Some(o)) => (r, o),
        };
        if self.units.is_none() {
            return Err("--rpm and --bearing-orders need --units".into());
        }
        check_rpm(rpm).map_err(|e| format!("--rpm {e}"))?;
        let bearing = match *orders {
            [bpfo, bpfi, bsf] => Bearing { bpfo, bpfi, bsf, ftf: None },
            [bpfo, bpfi, bsf, ftf] => Bearing { bpfo, bpfi, bsf, ftf: Some(ftf) },
            _ => return Err(format!(
                "--bearing-orders {orders:?}: want BPFO,BPFI,BSF[,FTF], like 3.5848,5.4152,2.357,0.3983"
            )),
        };
        bearing
            .check()
            .map_err(|e| format!("--bearing-orders: {e}"))?;
        let band = match self.envelope_band.as_deref() {
            None => None,
            Some(&[lo, hi]) => {
                check_band(&[lo, hi]).map_err(|e| format!("--envelope-band {e}"))?;
                Some([lo, hi])
            }
            Some(b) => return Err(format!("--envelope-band {b:?}: want LOW,HIGH in Hz")),
        };
        Ok(Some(EnvelopeSpec { rpm, bearing, band }))
    }
}

/// Below this fraction of the model's rate a recording is refused: the
/// model would see a band that upsampling invented, not measured.
const MIN_RATE_FRACTION: f64 = 0.5;

/// Why a file gave no frames: it cannot be read (EX_DATAERR), or it can but
/// holds nothing the model can use.
#[derive(Debug)]
pub(super) enum Unusable {
    Unreadable(anyhow::Error),
    NoFrames(String),
}

/// Frames of one channel of a WAV file, exactly as the daemon would cut them.
pub(super) fn wav_frames(
    path: &Path,
    channel: usize,
    model: &Model,
    hop: usize,
) -> Result<Vec<Frame>, Unusable> {
    let mut r = wav::open_reader(path).map_err(Unusable::Unreadable)?;
    let spec = r.spec();
    let ch = spec.channels as usize;
    let name = path.display();
    if channel >= ch {
        return Err(Unusable::NoFrames(format!(
            "{name}: has {ch} channel(s); channel {channel} does not exist"
        )));
    }
    if ch > 1 {
        eprintln!("{name}: {ch} channels, reading channel {channel} (--channel N for another)");
    }
    let m = &model.manifest;
    let min_rate = (m.sample_rate as f64 * MIN_RATE_FRACTION).ceil() as u32;
    if spec.sample_rate < min_rate {
        return Err(Unusable::NoFrames(format!(
            "{name}: {} Hz is far below the model's {} Hz; upsampling would invent the band \
             above {} Hz that the model reads (at least {min_rate} Hz is needed)",
            spec.sample_rate,
            m.sample_rate,
            spec.sample_rate / 2
        )));
    }
    let cond = Conditioning {
        source_rate: spec.sample_rate,
        model_rate: m.sample_rate,
        gain: 1.0,
        clip_level: wav::full_scale(&spec),
    };
    let mut asm = Assembler::new(cond, m.frame_length, hop).map_err(Unusable::Unreadable)?;
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let mut chan = Vec::new();
    let mut samples = 0u64;
    loop {
        let more = wav::read_block(&mut r, &mut buf, 4096 * ch)
            .with_context(|| format!("{name}: read failed (truncated file?)"))
            .map_err(Unusable::Unreadable)?;
        if !more {
            break;
        }
        chan.clear();
        chan.extend(buf.iter().skip(channel).step_by(ch));
        samples += chan.len() as u64;
        asm.push(&chan, 0, &mut frames)
            .map_err(Unusable::Unreadable)?;
    }
    if frames.is_empty() {
        return Err(Unusable::NoFrames(format!(
            "{name}: {samples} samples at {} Hz ({:.3} s) is shorter than one frame \
             ({} samples at {} Hz, {:.3} s)",
            spec.sample_rate,
            samples as f64 / spec.sample_rate as f64,
            m.frame_length,
            m.sample_rate,
            m.frame_length as f64 / m.sample_rate as f64
        )));
    }
    Ok(frames)
}

/// Runs the model over `frames` on `threads` threads, results in order.
pub fn predict_all(model: &Model, frames: &[Frame], threads: usize) -> Result<Vec<Prediction>> {
    let per = frames.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = frames
            .chunks(per)
            .map(|part| {
                let fork = model.fork();
                s.spawn(move || -> Result<Vec<Prediction>> {
                    let mut m = fork?;
                    let mut out = Vec::with_capacity(part.len());
                    let refs: Vec<&[f32]> = part.iter().map(|f| f.samples.as_slice()).collect();
                    m.predict(&refs, &mut out)?;
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(frames.len());
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a classify thread panicked"))??,
            );
        }
        Ok(all)
    })
}

pub fn load_model(path: Option<&Path>, max_batch: usize) -> Result<Model> {
    let default = Config::default().model;
    let path = path.unwrap_or(&default);
    let files = ModelFiles::load(path)
        .with_context(|| format!("(default model name: {DEFAULT_MODEL_NAME})"))?;
    Model::load_checked(&files, max_batch)
}

/// Classifies every file. A file that cannot be used is named with the
/// reason and skipped; the exit code is EX_CONFIG for the model,
/// EX_DATAERR when a file could not be read or when no file gave a frame.
pub fn classify(a: &ClassifyArgs) -> ExitCode {
    if a.hop == 0 {
        eprintln!("drsnd classify: --hop 0: the hop must be at least 1 sample");
        return ExitCode::from(EX_USAGE);
    }
    // One frame per run: faster than batches in tract for this model (see config).
    let model = match load_model(a.model.as_deref(), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("drsnd classify: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let (to_ms2, envelope) = match a.to_ms2().and_then(|u| Ok((u, a.envelope()?))) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("drsnd classify: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let mut scorer = match a
        .baseline
        .as_deref()
        .map(|p| Scorer::load(p, &model.manifest))
    {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("drsnd classify: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let labels = model.manifest.labels();
    if !a.json {
        println!(
            "{:<40} {:>7}  {:<8} {:>6}  {:<8} {:>6}  counts",
            "file", "frames", "label", "share", "family", "share"
        );
    }
    let (mut classified, mut unreadable) = (0, 0);
    for path in &a.files {
        let frames = match wav_frames(path, a.channel, &model, a.hop) {
            Ok(f) => f,
            Err(Unusable::Unreadable(e)) => {
                eprintln!("drsnd classify: {e:#}");
                unreadable += 1;
                continue;
            }
            Err(Unusable::NoFrames(why)) => {
                eprintln!("drsnd classify: {why}; no frames");
                continue;
            }
        };
        let preds = match predict_all(&model, &frames, threads) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("drsnd classify: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        };
        classified += 1;
        if a.json {
            let physics = Measures {
                to_ms2,
                envelope: envelope.as_ref(),
            };
            let printed = print_json(
                path,
                &frames,
                preds,
                &model.manifest,
                physics,
                scorer.as_mut(),
            );
            if let Err(e) = printed {
                eprintln!("drsnd classify: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        } else {
            print_row(path, &preds, &labels);
        }
    }
    if unreadable > 0 || classified == 0 {
        if classified == 0 {
            eprintln!("drsnd classify: no file gave a frame");
        }
        return ExitCode::from(EX_DATAERR);
    }
    ExitCode::SUCCESS
}

/// The physical measures asked for: none without units.
#[derive(Clone, Copy)]
struct Measures<'a> {
    to_ms2: Option<f64>,
    envelope: Option<&'a EnvelopeSpec>,
}

fn print_json(
    path: &Path,
    frames: &[Frame],
    preds: Vec<Prediction>,
    manifest: &crate::manifest::Manifest,
    measures: Measures,
    mut scorer: Option<&mut Scorer>,
) -> Result<()> {
    use crate::analyses::{physics::Physics, Analysis};
    use std::io::Write;
    let labels = manifest.labels();
    let rate = manifest.sample_rate as f64;
    // The daemon's default zones ([monitor] iso-zones).
    let zones = crate::config::MonitorConfig::default().iso_zones;
    let mut physics = measures
        .to_ms2
        .map(|k| Physics::new(manifest.sample_rate, k, zones, measures.envelope))
        .transpose()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut report = vec![crate::report::Report::default()];
    for (seq, (f, p)) in frames.iter().zip(preds).enumerate() {
        let time = (f.index + f.samples.len() as u64) as f64 / rate;
        let anomaly = match scorer.as_mut() {
            Some(s) => Some(s.score(f, &p.embedding)?),
            None => None,
        };
        let physical = match physics.as_mut() {
            Some(ph) => {
                ph.run(std::slice::from_ref(f), &mut report)?;
                report[0].physical
            }
            None => None,
        };
        let mut frame = FrameMsg::build(
            path.display().to_string(),
            seq as u64,
            f,
            p,
            &labels,
            &manifest.sha256,
            time,
            0.0,
        );
        frame.set_physical(physical);
        frame.anomaly = anomaly;
        let _ = out.write_all(crate::sinks::to_line(&Message::Frame(frame)).as_bytes());
    }
    Ok(())
}

/// A baseline and its features, for `--baseline`.
struct Scorer {
    baseline: crate::analyses::baseline::Baseline,
    features: crate::analyses::baseline::Features,
    row: Vec<f64>,
    z: Vec<f64>,
}

impl Scorer {
    fn load(path: &Path, m: &crate::manifest::Manifest) -> Result<Self, String> {
        use crate::analyses::baseline::{Baseline, Features};
        let features = Features::for_model(m);
        let baseline = Baseline::load(path, &m.sha256, &features).map_err(|e| e.to_string())?;
        let d = features.dims();
        Ok(Self {
            baseline,
            features,
            row: vec![0.0; d],
            z: vec![0.0; d],
        })
    }

    fn score(&mut self, f: &Frame, embedding: &[f32]) -> Result<f32> {
        self.features
            .compute(&f.samples, embedding, &mut self.row)?;
        Ok(self.baseline.score(&self.row, &mut self.z) as f32)
    }
}

/// The most frequent top entry of `top` over `preds` out of `names`:
/// (name, share in %, "name:count" for every entry seen).
fn tally(
    preds: &[Prediction],
    names: &[String],
    top: impl Fn(&Prediction) -> usize,
) -> (String, f64, Vec<String>) {
    let mut counts = vec![0usize; names.len()];
    for p in preds {
        if let Some(c) = counts.get_mut(top(p)) {
            *c += 1;
        }
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map(|(i, n)| (i, *n))
        .unwrap_or((0, 0));
    let share = 100.0 * n as f64 / preds.len().max(1) as f64;
    let detail = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{}:{n}", names[i]))
        .collect();
    let name = match names.get(best) {
        Some(n) if !preds.is_empty() => n.clone(),
        _ => "-".into(),
    };
    (name, share, detail)
}

fn print_row(path: &Path, preds: &[Prediction], labels: &Labels) {
    let (label, share, detail) = tally(preds, &labels.classes, |p| p.top().0);
    let (family, fshare, fdetail) = if labels.families.is_empty() {
        ("-".into(), 0.0, Vec::new())
    } else {
        tally(preds, &labels.families, |p| {
            p.top_family().map_or(0, |t| t.0)
        })
    };
    println!(
        "{:<40} {:>7}  {:<8} {:>5.1}%  {:<8} {:>5.1}%  {} {}",
        path.display(),
        preds.len(),
        label,
        share,
        family,
        fshare,
        detail.join(" "),
        fdetail.join(" ")
    );
}
