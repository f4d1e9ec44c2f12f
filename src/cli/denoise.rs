//! `drsnd denoise IN.wav OUT.wav`: a recording through the daemon's
//! denoiser and overlap-add, offline. The output is 32-bit float WAV at the
//! model rate, aligned sample for sample with the input (resampled first
//! when it has another rate): the same samples a stream's `<stream>.f32`
//! socket gives for the same signal.

use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::analyses::denoise::denoise_signal;
use crate::config::DEFAULT_DENOISER_NAME;
use crate::infer::denoiser::Denoiser;
use crate::manifest::ModelFiles;
use crate::resample::Resampler;
use crate::source::wav;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct DenoiseArgs {
    /// The recording (WAV, any rate; resampled to the model's).
    pub input: PathBuf,
    /// Where to write the denoised signal (32-bit float WAV, model rate).
    pub output: PathBuf,
    /// The denoiser's manifest (default: models/drsn-denoise.json, then
    /// the packaged one).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Channel to read from a multi-channel file.
    #[arg(long, default_value_t = 0)]
    pub channel: usize,
}

pub fn denoise(a: &DenoiseArgs) -> ExitCode {
    let mut model = match load(a.model.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("drsnd denoise: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let rate = model.manifest.sample_rate;
    let (x, from) = match read(&a.input, a.channel, rate) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("drsnd denoise: {e:#}");
            return ExitCode::from(EX_DATAERR);
        }
    };
    let written = denoise_signal(&mut model, &x).and_then(|y| write(&a.output, &y, rate));
    match written {
        Ok(()) => {
            let note = if from == rate {
                String::new()
            } else {
                format!(" (the input, {from} Hz, was resampled)")
            };
            eprintln!(
                "{}: {} samples at {rate} Hz{note}",
                a.output.display(),
                x.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drsnd denoise: {e:#}");
            ExitCode::from(if a.output.exists() {
                EX_DATAERR
            } else {
                EX_USAGE
            })
        }
    }
}

fn load(path: Option<&Path>) -> Result<Denoiser> {
    let default = default_model();
    let path = path.unwrap_or(&default);
    let files = ModelFiles::load(path)
        .with_context(|| format!("(default denoiser name: {DEFAULT_DENOISER_NAME})"))?;
    Denoiser::load_checked(&files)
}

fn default_model() -> PathBuf {
    let local = Path::new("models").join(DEFAULT_DENOISER_NAME);
    if local.exists() {
        return local;
    }
    Path::new(crate::config::PACKAGED_MODELS).join(DEFAULT_DENOISER_NAME)
}

/// One channel at the model rate, non-finite samples as 0 (as the daemon's
/// frames have them), and the file's own rate.
fn read(path: &Path, channel: usize, rate: u32) -> Result<(Vec<f32>, u32)> {
    let name = path.display();
    let mut r = wav::open_reader(path)?;
    let spec = r.spec();
    let ch = spec.channels as usize;
    if channel >= ch {
        anyhow::bail!("{name}: has {ch} channel(s); channel {channel} does not exist");
    }
    let mut buf = Vec::new();
    let mut x: Vec<f32> = Vec::new();
    while wav::read_block(&mut r, &mut buf, 4096 * ch)
        .with_context(|| format!("{name}: read failed (truncated file?)"))?
    {
        x.extend(buf.iter().skip(channel).step_by(ch));
    }
    for v in &mut x {
        if !v.is_finite() {
            *v = 0.0;
        }
    }
    if spec.sample_rate == rate {
        return Ok((x, rate));
    }
    let want = (x.len() as u64 * rate as u64 / spec.sample_rate as u64) as usize;
    let mut rs = Resampler::new(spec.sample_rate, rate).with_context(|| name.to_string())?;
    let mut out = Vec::with_capacity(want + 1024);
    rs.push(&x, |y| out.extend_from_slice(y))?;
    // The resampler holds back its delay and a partial chunk: zeros push
    // them out, and the result is cut to the input's duration.
    let zeros = vec![0.0; 4096];
    while out.len() < want {
        rs.push(&zeros, |y| out.extend_from_slice(y))?;
    }
    out.truncate(want);
    Ok((out, spec.sample_rate))
}

fn write(path: &Path, y: &[f32], rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let name = path.display();
    let mut w =
        hound::WavWriter::create(path, spec).with_context(|| format!("{name}: cannot create"))?;
    for &v in y {
        w.write_sample(v)
            .with_context(|| format!("{name}: write failed"))?;
    }
    w.finalize()
        .with_context(|| format!("{name}: write failed"))?;
    Ok(())
}
