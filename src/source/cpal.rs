//! Live capture through cpal (ALSA on Linux; USB audio interfaces carry most
//! accelerometers and microphones).
//!
//! The device is chosen by ALSA id ("default", "hw:1,0", "plughw:...") or by
//! part of its description; rate, channels and sample format are negotiated
//! from what it supports, and a fixed buffer size is requested because ALSA's
//! default can be seconds long.

use super::{Running, Source, SourceStatus};
use crate::config::SourceConfig;
use crate::ring::{now_ns, RingWriter};
use anyhow::{bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Formats in order of preference: float first, then the widest integers.
const FORMATS: [SampleFormat; 9] = [
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::I24,
    SampleFormat::I16,
    SampleFormat::U16,
    SampleFormat::U32,
    SampleFormat::I8,
    SampleFormat::U8,
    SampleFormat::F64,
];

pub struct CpalSource {
    device: cpal::Device,
    label: String,
    config: StreamConfig,
    format: SampleFormat,
}

/// One line per input device: id, description, and supported configs.
pub fn list_devices() -> Result<Vec<String>> {
    let host = cpal::default_host();
    let mut out = Vec::new();
    for d in host
        .input_devices()
        .context("cannot list audio input devices")?
    {
        let id = d
            .id()
            .map(|i| i.id().to_string())
            .unwrap_or_else(|_| "?".into());
        let desc = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_default();
        out.push(format!("{id}\t{desc}"));
        if let Ok(cfgs) = d.supported_input_configs() {
            for c in cfgs {
                out.push(format!(
                    "\t{} ch, {}-{} Hz, {:?}, buffer {:?}",
                    c.channels(),
                    c.min_sample_rate(),
                    c.max_sample_rate(),
                    c.sample_format(),
                    c.buffer_size()
                ));
            }
        }
    }
    Ok(out)
}

fn find_device(spec: &str) -> Result<cpal::Device> {
    let host = cpal::default_host();
    if spec == "default" {
        return host
            .default_input_device()
            .context("no default audio input device");
    }
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .context("cannot list audio input devices")?
        .collect();
    let id_of = |d: &cpal::Device| d.id().map(|i| i.id().to_string()).unwrap_or_default();
    let desc_of = |d: &cpal::Device| {
        d.description()
            .map(|x| x.name().to_string())
            .unwrap_or_default()
    };
    if let Some(d) = devices.iter().find(|d| id_of(d) == spec) {
        return Ok(d.clone());
    }
    let want = spec.to_lowercase();
    if let Some(d) = devices
        .iter()
        .find(|d| desc_of(d).to_lowercase().contains(&want))
    {
        return Ok(d.clone());
    }
    // ALSA ids such as hw:1,0 are valid even when the hint list omits them.
    if let Ok(id) = format!("alsa:{spec}").parse::<cpal::DeviceId>() {
        if let Some(d) = host.device_by_id(&id) {
            return Ok(d);
        }
    }
    let names: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({})", id_of(d), desc_of(d)))
        .collect();
    bail!(
        "no audio input device matches {spec:?}; devices: {}",
        names.join(", ")
    )
}

impl CpalSource {
    pub fn open(cfg: &SourceConfig) -> Result<Self> {
        let spec = cfg.device.clone().unwrap_or_else(|| "default".into());
        let device = find_device(&spec)?;
        let label = format!(
            "{spec} ({})",
            device
                .description()
                .map(|d| d.name().to_string())
                .unwrap_or_default()
        );
        let ranges: Vec<_> = device
            .supported_input_configs()
            .with_context(|| format!("{label}: cannot read supported configs"))?
            .collect();
        let default = device.default_input_config().ok();
        let channels = cfg
            .channels
            .or_else(|| default.as_ref().map(|d| d.channels()))
            .unwrap_or(1);
        let rate = cfg
            .rate
            .or_else(|| default.as_ref().map(|d| d.sample_rate()))
            .unwrap_or(48_000);
        let pick = FORMATS.iter().find_map(|f| {
            ranges.iter().find(|r| {
                r.sample_format() == *f
                    && r.channels() == channels
                    && (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate)
            })
        });
        let Some(range) = pick else {
            bail!("{label}: no supported input config with {channels} channels at {rate} Hz; see `drsnd devices`");
        };
        let frames = match range.buffer_size() {
            SupportedBufferSize::Range { min, max } => cfg.buffer_frames.clamp(*min, *max),
            SupportedBufferSize::Unknown => cfg.buffer_frames,
        };
        let config = StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size: cpal::BufferSize::Fixed(frames),
        };
        tracing::info!(
            "{label}: {channels} ch at {rate} Hz, {:?}, buffer {frames} frames",
            range.sample_format()
        );
        Ok(Self {
            device,
            label,
            config,
            format: range.sample_format(),
        })
    }

    fn build<T>(
        &self,
        mut writers: Vec<Option<RingWriter>>,
        status: Arc<SourceStatus>,
    ) -> Result<cpal::Stream>
    where
        T: SizedSample + Send + 'static,
        f32: FromSample<T>,
    {
        let ch = self.config.channels as usize;
        let label = self.label.clone();
        // The capture callback: converts and pushes, nothing else. No
        // allocation, lock, log or wait (RingWriter::push is wait-free).
        let data = move |data: &[T], _: &cpal::InputCallbackInfo| {
            let frames = data.len() / ch;
            let t = now_ns();
            for (c, w) in writers.iter_mut().enumerate() {
                if let Some(w) = w {
                    w.push(
                        frames,
                        data.iter()
                            .skip(c)
                            .step_by(ch)
                            .map(|&s| s.to_sample::<f32>()),
                        t,
                    );
                }
            }
        };
        let error = move |e: cpal::Error| {
            tracing::error!("{label}: capture error: {e}");
            status.set(format!("error: {e}"));
        };
        self.device
            .build_input_stream::<T, _, _>(self.config, data, error, None)
            .with_context(|| format!("{}: cannot open capture stream", self.label))
    }
}

impl Source for CpalSource {
    fn rate(&self) -> u32 {
        self.config.sample_rate
    }
    fn channels(&self) -> usize {
        self.config.channels as usize
    }
    fn full_scale(&self) -> f32 {
        // Audio devices deliver ±1 full scale in every format once converted.
        1.0
    }

    fn start(
        self: Box<Self>,
        writers: Vec<Option<RingWriter>>,
        _stop: Arc<AtomicBool>,
        status: Arc<SourceStatus>,
    ) -> Result<Running> {
        let stream = match self.format {
            SampleFormat::F32 => self.build::<f32>(writers, status)?,
            SampleFormat::F64 => self.build::<f64>(writers, status)?,
            SampleFormat::I32 => self.build::<i32>(writers, status)?,
            SampleFormat::I24 => self.build::<cpal::I24>(writers, status)?,
            SampleFormat::I16 => self.build::<i16>(writers, status)?,
            SampleFormat::I8 => self.build::<i8>(writers, status)?,
            SampleFormat::U32 => self.build::<u32>(writers, status)?,
            SampleFormat::U16 => self.build::<u16>(writers, status)?,
            SampleFormat::U8 => self.build::<u8>(writers, status)?,
            f => bail!("{}: sample format {f:?} is not supported", self.label),
        };
        stream
            .play()
            .with_context(|| format!("{}: cannot start capture", self.label))?;
        Ok(Running {
            cpal_stream: Some(stream),
            thread: None,
        })
    }
}
