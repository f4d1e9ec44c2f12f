//! `drsnd classify` (offline, every core) and `drsnd check`. Both use the
//! daemon's own frame assembler and model code, so their labels are the
//! daemon's labels for the same frames.

use super::offline;
use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::analyses::envelope::EnvelopeSpec;
use crate::analyses::Shared;
use crate::config::{Config, DEFAULT_MODEL_NAME};
use crate::frame::{Assembler, Conditioning, Frame};
use crate::infer::{Model, Prediction};
use crate::manifest::{Labels, Manifest, ModelFiles};
use crate::protocol::Message;
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
    /// Channel to read from multi-channel files (default 0; with --config,
    /// the stream's channel in its source).
    #[arg(long)]
    pub channel: Option<usize>,
    /// One JSON frame message per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub sensor: SensorArgs,
    /// A baseline (`drsnd baseline learn`): adds `anomaly` to every --json frame.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The daemon's config: run the files as its stream --stream would be
    /// run live (units, speed, bearing, monitor, baseline from state-dir,
    /// denoiser), and with --json print its frame and event lines.
    #[arg(long, conflicts_with_all = ["model", "hop", "units", "sensitivity", "rpm", "rpm_range", "bearing_orders", "envelope_band", "baseline"])]
    pub config: Option<PathBuf>,
    /// With --config: the stream (default: the config's only one).
    #[arg(long, requires = "config")]
    pub stream: Option<String>,
}

/// What the samples measure and the machine's bearing: the physical
/// measures and envelope evidence offline (`classify`, `baseline learn`).
#[derive(Args, Debug, Clone, Default)]
pub struct SensorArgs {
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
    /// The speeds the shaft may really run at, LOW,HIGH rev/min: the
    /// envelope measures the speed within them (default --rpm ±5 %).
    #[arg(long, value_delimiter = ',')]
    pub rpm_range: Option<Vec<f64>>,
    /// The bearing's defect orders BPFO,BPFI,BSF[,FTF] (multiples of shaft speed).
    #[arg(long, value_delimiter = ',')]
    pub bearing_orders: Option<Vec<f64>>,
    /// A fixed band to demodulate, LOW,HIGH in Hz (default: chosen per window).
    #[arg(long, value_delimiter = ',')]
    pub envelope_band: Option<Vec<f64>>,
}

impl SensorArgs {
    /// Units to m/s² and the envelope settings, both checked.
    pub fn settings(&self) -> Result<(Option<f64>, Option<EnvelopeSpec>), String> {
        Ok((self.to_ms2()?, self.envelope()?))
    }

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

impl SensorArgs {
    /// The envelope settings, checked as the config checks them.
    fn envelope(&self) -> Result<Option<EnvelopeSpec>, String> {
        use crate::analyses::speed::SpeedSpec;
        use crate::config::{check_band, check_rpm, check_rpm_range, Bearing};
        let (rpm, orders) = match (self.rpm, self.bearing_orders.as_deref()) {
            (None, None) if self.envelope_band.is_some() => {
                return Err("--envelope-band needs --rpm and --bearing-orders".into())
            }
            (None, _) if self.rpm_range.is_some() => {
                return Err("--rpm-range needs --rpm, the nominal speed".into())
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
        let range = match self.rpm_range.as_deref() {
            None => None,
            Some(&[lo, hi]) => {
                check_rpm_range(rpm, &[lo, hi]).map_err(|e| format!("--rpm-range {e}"))?;
                Some([lo, hi])
            }
            Some(r) => return Err(format!("--rpm-range {r:?}: want LOW,HIGH in rev/min")),
        };
        let bearing = match *orders {
            [bpfo, bpfi, bsf] => Bearing::from_orders(bpfo, bpfi, bsf, None),
            [bpfo, bpfi, bsf, ftf] => Bearing::from_orders(bpfo, bpfi, bsf, Some(ftf)),
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
        Ok(Some(EnvelopeSpec {
            speed: SpeedSpec::new(rpm, range),
            bearing,
            band,
        }))
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

/// One channel of a WAV file, opened and checked for the model: its spec
/// and a reader positioned at the start.
pub(super) struct WavChannel {
    pub reader: wav::Reader,
    pub spec: hound::WavSpec,
    pub channel: usize,
    name: String,
}

impl WavChannel {
    pub fn open(path: &Path, channel: usize, m: &Manifest) -> Result<Self, Unusable> {
        let reader = wav::open_reader(path).map_err(Unusable::Unreadable)?;
        let spec = reader.spec();
        let ch = spec.channels as usize;
        let name = path.display().to_string();
        if channel >= ch {
            return Err(Unusable::NoFrames(format!(
                "{name}: has {ch} channel(s); channel {channel} does not exist"
            )));
        }
        if ch > 1 {
            eprintln!("{name}: {ch} channels, reading channel {channel} (--channel N for another)");
        }
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
        Ok(Self {
            reader,
            spec,
            channel,
            name,
        })
    }

    /// Hands the channel's samples to `each` in blocks, to the end of the
    /// file; returns how many there were.
    pub fn for_each_block(
        &mut self,
        mut each: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<u64, Unusable> {
        let ch = self.spec.channels as usize;
        let (mut buf, mut chan) = (Vec::new(), Vec::new());
        let mut samples = 0u64;
        loop {
            let more = wav::read_block(&mut self.reader, &mut buf, 4096 * ch)
                .with_context(|| format!("{}: read failed (truncated file?)", self.name))
                .map_err(Unusable::Unreadable)?;
            if !more {
                return Ok(samples);
            }
            chan.clear();
            chan.extend(buf.iter().skip(self.channel).step_by(ch));
            samples += chan.len() as u64;
            each(&chan).map_err(Unusable::Unreadable)?;
        }
    }

    /// "N samples at R Hz is shorter than one frame": why a file gave none.
    pub fn too_short(&self, samples: u64, m: &Manifest) -> Unusable {
        Unusable::NoFrames(format!(
            "{}: {samples} samples at {} Hz ({:.3} s) is shorter than one frame \
             ({} samples at {} Hz, {:.3} s)",
            self.name,
            self.spec.sample_rate,
            samples as f64 / self.spec.sample_rate as f64,
            m.frame_length,
            m.sample_rate,
            m.frame_length as f64 / m.sample_rate as f64
        ))
    }
}

/// Frames of one channel of a WAV file, exactly as the daemon would cut them.
pub(super) fn wav_frames(
    path: &Path,
    channel: usize,
    model: &Model,
    hop: usize,
) -> Result<Vec<Frame>, Unusable> {
    let m = &model.manifest;
    let mut w = WavChannel::open(path, channel, m)?;
    let cond = Conditioning {
        source_rate: w.spec.sample_rate,
        model_rate: m.sample_rate,
        gain: 1.0,
        clip_level: wav::full_scale(&w.spec),
    };
    let mut asm = Assembler::new(cond, m.frame_length, hop).map_err(Unusable::Unreadable)?;
    let mut frames = Vec::new();
    let samples = w.for_each_block(|x| asm.push(x, 0, &mut frames))?;
    if frames.is_empty() {
        return Err(w.too_short(samples, m));
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
    if let Some(path) = &a.config {
        return classify_config(a, path);
    }
    // One frame per run: faster than batches in tract for this model (see config).
    let model = match load_model(a.model.as_deref(), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("drsnd classify: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let (to_ms2, envelope) = match a.sensor.settings() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("drsnd classify: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    // A baseline the stream could not use is an error here, not a warning.
    if let Some(Err(e)) = a
        .baseline
        .as_deref()
        .map(|p| check_baseline(p, &model.manifest))
    {
        eprintln!("drsnd classify: {e}");
        return ExitCode::from(EX_CONFIG);
    }
    let channel = a.channel.unwrap_or(0);
    if a.json {
        let shared = Shared {
            classifier: model,
            denoiser: None,
            spectrum: false,
        };
        let off = offline::from_flags(
            shared,
            (to_ms2, envelope),
            a.baseline.as_deref(),
            a.hop,
            channel,
        );
        return run_offline(&off, &a.files, true);
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let labels = model.manifest.labels();
    print_header();
    let (mut classified, mut unreadable) = (0, 0);
    for path in &a.files {
        let frames = match wav_frames(path, channel, &model, a.hop) {
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
        let tops: Vec<_> = preds
            .iter()
            .map(|p| (p.top().0, p.top_family().map_or(0, |t| t.0)))
            .collect();
        print_row(path, &tops, &labels);
    }
    exit_code(classified, unreadable)
}

/// EX_DATAERR when a file could not be read or no file gave a frame.
fn exit_code(classified: usize, unreadable: usize) -> ExitCode {
    if unreadable > 0 || classified == 0 {
        if classified == 0 {
            eprintln!("drsnd classify: no file gave a frame");
        }
        return ExitCode::from(EX_DATAERR);
    }
    ExitCode::SUCCESS
}

fn print_header() {
    println!(
        "{:<40} {:>7}  {:<8} {:>6}  {:<8} {:>6}  counts",
        "file", "frames", "label", "share", "family", "share"
    );
}

/// `--config`: the files as the config's stream, through the daemon's pipeline.
fn classify_config(a: &ClassifyArgs, path: &Path) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drsnd classify: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let names = cfg.stream_names();
    let name = match (a.stream.as_deref(), names.as_slice()) {
        (Some(s), _) => s.to_string(),
        (None, [only]) => only.to_string(),
        (None, _) => {
            eprintln!(
                "drsnd classify: {}: --stream is needed to pick one of its streams ({})",
                path.display(),
                names.join(", ")
            );
            return ExitCode::from(EX_USAGE);
        }
    };
    let mut off = match offline::Offline::from_config(&cfg, &name) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("drsnd classify: {}: {e}", path.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Some(c) = a.channel {
        off.channel = c;
    }
    if !a.json {
        print_header();
    }
    run_offline(&off, &a.files, a.json)
}

/// Runs every file through `off`; with `json` prints its lines, else a
/// row per file.
fn run_offline(off: &offline::Offline, files: &[PathBuf], json: bool) -> ExitCode {
    use std::io::Write;
    let labels = off.shared.classifier.manifest.labels();
    let (mut classified, mut unreadable) = (0, 0);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for path in files {
        let mut tops = Vec::new();
        let ran = off.run_file(path, |m| {
            if json {
                return out.write_all(crate::sinks::to_line(&m).as_bytes());
            }
            if let Message::Frame(f) = &m {
                tops.push((
                    index_of(&labels.classes, Some(&f.label)),
                    index_of(&labels.families, f.family.as_ref()),
                ));
            }
            Ok(())
        });
        match ran {
            Ok(()) => classified += 1,
            Err(offline::FileError::Unusable(Unusable::Unreadable(e))) => {
                eprintln!("drsnd classify: {e:#}");
                unreadable += 1;
                continue;
            }
            Err(offline::FileError::Unusable(Unusable::NoFrames(why))) => {
                eprintln!("drsnd classify: {why}; no frames");
                continue;
            }
            Err(offline::FileError::Failed(e)) => {
                eprintln!("drsnd classify: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        }
        if !json {
            let _ = out.flush();
            print_row(path, &tops, &labels);
        }
    }
    let _ = out.flush();
    exit_code(classified, unreadable)
}

fn index_of(names: &[String], name: Option<&String>) -> usize {
    name.and_then(|n| names.iter().position(|x| x == n))
        .unwrap_or(0)
}

/// Whether the baseline at `path` can score this model's frames.
fn check_baseline(path: &Path, m: &Manifest) -> Result<(), String> {
    use crate::analyses::baseline::{Baseline, Features};
    let features = Features::for_model(m);
    Baseline::load(path, &m.sha256, &features)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The most frequent entry of `tops` out of `names`: (name, share in %,
/// "name:count" for every entry seen).
fn tally(tops: &[usize], names: &[String]) -> (String, f64, Vec<String>) {
    let mut counts = vec![0usize; names.len()];
    for &t in tops {
        if let Some(c) = counts.get_mut(t) {
            *c += 1;
        }
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map(|(i, n)| (i, *n))
        .unwrap_or((0, 0));
    let share = 100.0 * n as f64 / tops.len().max(1) as f64;
    let detail = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{}:{n}", names[i]))
        .collect();
    let name = match names.get(best) {
        Some(n) if !tops.is_empty() => n.clone(),
        _ => "-".into(),
    };
    (name, share, detail)
}

/// One file's row: `tops` holds each frame's (class, family) indices.
fn print_row(path: &Path, tops: &[(usize, usize)], labels: &Labels) {
    let classes: Vec<usize> = tops.iter().map(|t| t.0).collect();
    let (label, share, detail) = tally(&classes, &labels.classes);
    let (family, fshare, fdetail) = if labels.families.is_empty() {
        ("-".into(), 0.0, Vec::new())
    } else {
        let families: Vec<usize> = tops.iter().map(|t| t.1).collect();
        tally(&families, &labels.families)
    };
    println!(
        "{:<40} {:>7}  {:<8} {:>5.1}%  {:<8} {:>5.1}%  {} {}",
        path.display(),
        tops.len(),
        label,
        share,
        family,
        fshare,
        detail.join(" "),
        fdetail.join(" ")
    );
}
