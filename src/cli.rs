//! The command line: `drsnd run | watch | classify | devices | check`.

use crate::config::{Config, Pace, RawFormat, SourceConfig, SourceKind, EX_CONFIG};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/drsn/drsnd.toml";

#[derive(Parser)]
#[command(
    name = "drsnd",
    version,
    about = "Real-time machine-fault monitoring with a Deep Residual Shrinkage Network",
    long_about = "drsnd listens to an accelerometer or microphone (cpal), a WAV recording or raw PCM, \
classifies every frame with a DRSN (ONNX, run by tract) and publishes the label, the class \
probabilities and the learned per-channel thresholds of every shrinkage unit as NDJSON over a \
Unix socket. See `drsnd run --help` and docs/protocol.md."
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (flags override the config file).
    Run(RunArgs),
    /// Connect to the socket and show frames live (or pass lines through with --json).
    Watch(WatchArgs),
    /// Classify WAV files offline, as fast as the machine allows.
    Classify(ClassifyArgs),
    /// List audio input devices and their supported configs.
    Devices,
    /// Validate a config and a model, run one frame, print a summary.
    Check(CheckArgs),
    /// Load a model and run it once, nothing else: the daemon's trial load
    /// of a new model, in a process of its own.
    #[command(hide = true)]
    CheckModel(CheckModelArgs),
}

#[derive(Args)]
struct CheckModelArgs {
    /// Model manifest (.json) or ONNX file with its manifest beside it.
    model: PathBuf,
    #[arg(long, default_value_t = 1)]
    max_batch: usize,
}

#[derive(Args, Clone)]
pub struct Overrides {
    /// Config file (default /etc/drsn/drsnd.toml if it exists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Model manifest (.json) or ONNX file with its manifest beside it.
    #[arg(long)]
    model: Option<PathBuf>,
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
struct RunArgs {
    #[command(flatten)]
    o: Overrides,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Unix socket path.
    #[arg(long, default_value = "/run/drsn/drsn.sock")]
    pub socket: PathBuf,
    /// Print the daemon's lines unchanged.
    #[arg(long)]
    pub json: bool,
    /// Only these streams.
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Leave out thresholds.
    #[arg(long)]
    pub no_thresholds: bool,
    /// Exit after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
}

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
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    o: Overrides,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => run(a.o),
        Cmd::Watch(a) => {
            init_logging("warn");
            report(crate::watch::watch(&a))
        }
        Cmd::Classify(a) => {
            init_logging("warn");
            match crate::classify::classify(&a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drsnd classify: {e:#}");
                    ExitCode::from(EX_CONFIG)
                }
            }
        }
        Cmd::Devices => {
            init_logging("warn");
            report(crate::source::cpal::list_devices().map(|lines| {
                for l in lines {
                    println!("{l}");
                }
            }))
        }
        Cmd::Check(a) => check(a.o),
        Cmd::CheckModel(a) => {
            let loaded = crate::manifest::ModelFiles::load(&a.model)
                .and_then(|f| crate::infer::Model::load(&f, a.max_batch));
            match loaded {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drsnd: {e:#}");
                    ExitCode::from(EX_CONFIG)
                }
            }
        }
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drsnd: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn run(o: Overrides) -> ExitCode {
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

fn check(o: Overrides) -> ExitCode {
    init_logging("warn");
    let cfg = match build_config(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drsnd check: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match crate::classify::check(&cfg) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drsnd check: {e:#}");
            ExitCode::from(EX_CONFIG)
        }
    }
}

/// tracing to stderr; RUST_LOG wins over the config. Under systemd
/// (JOURNAL_STREAM set) journald adds timestamps, so we leave them out.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
}
