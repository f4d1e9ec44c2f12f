//! `drsnd run`: the config file, the command-line overrides, the daemon.

use super::{init_logging, EX_CONFIG};
use crate::config::{Config, Pace, RawFormat, SourceConfig, SourceKind};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/drsn/drsnd.toml";

#[derive(Args, Clone)]
pub struct Overrides {
    /// Config file (default /etc/drsn/drsnd.toml if it exists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Model manifest (.json) or ONNX file with its manifest beside it.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The denoiser's manifest: turns the denoiser on (or replaces the
    /// configured one); its socket-dir, if any, stays as configured.
    #[arg(long)]
    denoise_model: Option<PathBuf>,
    /// Unix socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Hop between frames, in model-rate samples.
    #[arg(long)]
    hop: Option<usize>,
    /// Replay WAV files instead of the configured sources (one stream each, named by file stem).
    #[arg(long = "wav", value_name = "FILE")]
    wav: Vec<PathBuf>,
    /// With --wav: as fast as possible instead of real time.
    #[arg(long)]
    fast: bool,
    /// With --wav: loop forever.
    #[arg(long = "loop")]
    looping: bool,
    /// Read raw PCM from PATH ("-" for stdin) instead of the configured sources.
    #[arg(long, value_name = "PATH")]
    raw: Option<PathBuf>,
    /// With --raw: sample rate (required).
    #[arg(long)]
    rate: Option<u32>,
    /// With --raw: f32le or s16le.
    #[arg(long, value_parser = ["f32le", "s16le"])]
    format: Option<String>,
    /// With --raw or --device: channels.
    #[arg(long)]
    channels: Option<u16>,
    /// Capture from this audio input instead of the configured sources.
    #[arg(long)]
    device: Option<String>,
    /// Stream names (one per channel) for --raw or --device.
    #[arg(long = "stream")]
    streams: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub o: Overrides,
}

/// Loads the config file (if any) and applies the command-line overrides.
pub fn build_config(o: &Overrides) -> Result<Config, String> {
    let path = o.config.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        p.exists().then_some(p)
    });
    let mut cfg = match &path {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(m) = &o.denoise_model {
        let socket_dir = cfg.denoise.take().and_then(|d| d.socket_dir);
        cfg.denoise = Some(crate::config::DenoiseConfig {
            model: m.clone(),
            socket_dir,
        });
    }
    if let Some(m) = &o.model {
        cfg.model = m.clone();
    }
    if let Some(s) = &o.socket {
        cfg.socket.path = s.clone();
    }
    if let Some(h) = o.hop {
        cfg.hop = h;
    }
    let base =
        || -> SourceConfig { toml::from_str("kind = \"wav\"").expect("minimal source parses") };
    if !o.wav.is_empty() {
        cfg.sources = o
            .wav
            .iter()
            .map(|f| SourceConfig {
                kind: SourceKind::Wav,
                path: Some(f.clone()),
                streams: vec![f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "wav".into())],
                pace: if o.fast { Pace::Fast } else { Pace::Realtime },
                looping: o.looping,
                ..base()
            })
            .collect();
    } else if let Some(raw) = &o.raw {
        let format = match o.format.as_deref() {
            Some("s16le") => RawFormat::S16le,
            _ => RawFormat::F32le,
        };
        cfg.sources = vec![SourceConfig {
            kind: SourceKind::Raw,
            path: Some(raw.clone()),
            rate: o.rate,
            channels: o.channels,
            format: Some(format),
            streams: if o.streams.is_empty() {
                vec!["raw".into()]
            } else {
                o.streams.clone()
            },
            ..base()
        }];
    } else if let Some(d) = &o.device {
        cfg.sources = vec![SourceConfig {
            kind: SourceKind::Cpal,
            device: Some(d.clone()),
            rate: o.rate,
            channels: o.channels,
            streams: if o.streams.is_empty() {
                vec!["main".into()]
            } else {
                o.streams.clone()
            },
            ..base()
        }];
    } else if cfg.sources.is_empty() {
        // Works out of the box: the default input device, one stream.
        cfg.sources = vec![SourceConfig {
            kind: SourceKind::Cpal,
            device: Some("default".into()),
            ..base()
        }];
    }
    let origin = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "command line".into());
    cfg.validate("", &origin).map_err(|e| e.to_string())?;
    Ok(cfg)
}

pub fn run(o: Overrides) -> ExitCode {
    let cfg = match build_config(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drsnd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    init_logging(&cfg.log.level);
    let reload: std::sync::Arc<crate::daemon::ReloadFn> =
        std::sync::Arc::new(move || build_config(&o));
    let prepared = match crate::daemon::prepare(cfg, Some(reload)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match crate::daemon::run(prepared) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
