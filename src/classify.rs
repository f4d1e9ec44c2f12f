//! `drsnd classify` (offline, every core) and `drsnd check`. Both use the
//! daemon's own frame assembler and model code, so their labels are the
//! daemon's labels for the same frames.

use crate::cli::ClassifyArgs;
use crate::config::{Config, DEFAULT_MODEL_NAME};
use crate::frame::{Assembler, Conditioning, Frame};
use crate::infer::{Model, Prediction};
use crate::manifest::ModelFiles;
use crate::protocol::{FrameMsg, Message};
use crate::source::wav;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Frames of one channel of a WAV file, exactly as the daemon would cut them.
pub fn wav_frames(path: &Path, channel: usize, model: &Model, hop: usize) -> Result<Vec<Frame>> {
    let mut r = wav::open_reader(path)?;
    let spec = r.spec();
    let ch = spec.channels as usize;
    if channel >= ch {
        bail!(
            "{}: has {ch} channel(s); channel {channel} does not exist",
            path.display()
        );
    }
    let m = &model.manifest;
    let cond = Conditioning {
        source_rate: spec.sample_rate,
        model_rate: m.sample_rate,
        gain: 1.0,
        clip_level: wav::full_scale(&spec),
    };
    let mut asm = Assembler::new(cond, m.frame_length, hop)?;
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    let mut chan = Vec::new();
    while wav::read_block(&mut r, &mut buf, 4096 * ch)
        .with_context(|| format!("{}: read failed (truncated file?)", path.display()))?
    {
        chan.clear();
        chan.extend(buf.iter().skip(channel).step_by(ch));
        asm.push(&chan, 0, &mut frames)?;
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

pub fn classify(a: &ClassifyArgs) -> Result<()> {
    if a.hop == 0 {
        anyhow::bail!("--hop 0: the hop must be at least 1 sample");
    }
    // One frame per run: faster than batches in tract for this model (see config).
    let model = load_model(a.model.as_deref(), 1)?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let classes = model.manifest.class_ids();
    let rate = model.manifest.sample_rate as f64;
    if !a.json {
        println!(
            "{:<40} {:>7}  {:<8} {:>6}  counts",
            "file", "frames", "label", "share"
        );
    }
    for path in &a.files {
        let frames = wav_frames(path, a.channel, &model, a.hop)?;
        let preds = predict_all(&model, &frames, threads)?;
        if a.json {
            print_json(path, &frames, preds, &model.manifest, rate);
        } else {
            print_row(path, &preds, &classes);
        }
    }
    Ok(())
}

fn print_json(
    path: &Path,
    frames: &[Frame],
    preds: Vec<Prediction>,
    manifest: &crate::manifest::Manifest,
    rate: f64,
) {
    use std::io::Write;
    let classes = manifest.class_ids();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (seq, (f, p)) in frames.iter().zip(preds).enumerate() {
        let time = (f.index + f.samples.len() as u64) as f64 / rate;
        let msg = Message::Frame(FrameMsg::build(
            path.display().to_string(),
            seq as u64,
            f,
            p,
            &classes,
            &manifest.sha256,
            time,
            0.0,
        ));
        let _ = out.write_all(crate::publish::to_line(&msg).as_bytes());
    }
}

fn print_row(path: &Path, preds: &[Prediction], classes: &[String]) {
    let mut counts = vec![0usize; classes.len()];
    for p in preds {
        counts[p.top().0] += 1;
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map(|(i, n)| (i, *n))
        .unwrap_or((0, 0));
    let share = if preds.is_empty() {
        0.0
    } else {
        100.0 * n as f64 / preds.len() as f64
    };
    let detail: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{}:{n}", classes[i]))
        .collect();
    let label = if preds.is_empty() {
        "-"
    } else {
        classes[best].as_str()
    };
    println!(
        "{:<40} {:>7}  {:<8} {:>5.1}%  {}",
        path.display(),
        preds.len(),
        label,
        share,
        detail.join(" ")
    );
}

/// `drsnd check`: the config parses, the model loads and agrees with its
/// manifest, one frame runs, every source opens.
pub fn check(cfg: &Config) -> Result<String> {
    let files = ModelFiles::load(&cfg.model)?;
    let mut model = Model::load_checked(&files, cfg.max_batch)?;
    let m = model.manifest.clone();
    let frame: Vec<f32> = (0..m.frame_length)
        .map(|i| (i as f32 * 0.3).sin())
        .collect();
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    model.predict(&[frame.as_slice()], &mut out)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let mut lines = vec![
        format!(
            "model     {} {} ({})",
            m.name,
            m.version,
            files.onnx_path.display()
        ),
        format!("sha256    {} (matches)", m.sha256),
        format!(
            "input     {} samples at {} Hz",
            m.frame_length, m.sample_rate
        ),
        format!("classes   {}", m.class_ids().join(" ")),
        format!(
            "tau       {} units: {}",
            m.thresholds.len(),
            m.thresholds
                .iter()
                .map(|t| format!("{}[{}]", t.name, t.channels))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "one frame {ms:.3} ms, label {}",
            m.classes[out[0].top().0].id
        ),
        format!(
            "socket    {} (mode {})",
            cfg.socket.path.display(),
            cfg.socket.mode
        ),
        format!("hop       {} samples, max batch {}", cfg.hop, cfg.max_batch),
    ];
    for s in &cfg.sources {
        let src = crate::source::open(s)?;
        lines.push(format!(
            "source    {}: {} Hz, {} ch -> streams {:?}",
            s.label(),
            src.rate(),
            src.channels(),
            s.streams
        ));
    }
    lines.push("ok".into());
    Ok(lines.join("\n"))
}
