//! The command line: `drsnd run | watch | classify | denoise | baseline | fleet | devices |
//! check`. Each command is a file here that owns its arguments (`offline` runs a stream's
//! pipeline over files for `classify`); this file parses, sets up logging and turns
//! results into exit codes (sysexits.h).

mod baseline;
mod check;
mod classify;
mod denoise;
mod fleet;
mod history;
mod offline;
mod run;
mod watch;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A bad config or model (EX_CONFIG).
pub const EX_CONFIG: u8 = 78;
/// Wrong use of the command line (EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// An input file that cannot be used (EX_DATAERR).
pub const EX_DATAERR: u8 = 65;

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
    Run(run::RunArgs),
    /// Connect to the socket and show frames live (or pass lines through with --json).
    Watch(watch::WatchArgs),
    /// Classify WAV files offline, as fast as the machine allows.
    Classify(classify::ClassifyArgs),
    /// Denoise a WAV recording offline (the daemon's denoiser and overlap-add).
    Denoise(denoise::DenoiseArgs),
    /// Learn a machine's normal from recordings (`baseline learn`).
    Baseline(baseline::BaselineArgs),
    /// The history store: import recordings, export a stream's rows.
    History(history::HistoryArgs),
    /// Every node and stream an MQTT broker knows, then events live.
    Fleet(fleet::FleetArgs),
    /// List audio input devices and their supported configs.
    Devices,
    /// Validate a config and a model, run one frame, print a summary.
    Check(check::CheckArgs),
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => run::run(a.o),
        Cmd::Watch(a) => {
            init_logging("warn");
            report(watch::watch(&a))
        }
        Cmd::Classify(a) => {
            init_logging("warn");
            classify::classify(&a)
        }
        Cmd::Denoise(a) => {
            init_logging("warn");
            denoise::denoise(&a)
        }
        Cmd::Baseline(a) => {
            init_logging("warn");
            baseline::baseline(&a)
        }
        Cmd::History(a) => {
            init_logging("warn");
            history::history(&a)
        }
        Cmd::Fleet(a) => {
            init_logging("warn");
            report(fleet::fleet(&a))
        }
        Cmd::Devices => {
            init_logging("warn");
            report(crate::source::cpal::list_devices().map(|lines| {
                for l in lines {
                    println!("{l}");
                }
            }))
        }
        Cmd::Check(a) => check::check(a),
        Cmd::CheckModel(a) => {
            let loaded =
                crate::manifest::ModelFiles::load(&a.model).and_then(|f| match f.manifest.kind {
                    crate::manifest::ModelKind::Denoiser => {
                        crate::infer::denoiser::Denoiser::load(&f).map(drop)
                    }
                    crate::manifest::ModelKind::Classifier => {
                        crate::infer::Model::load(&f, a.max_batch).map(drop)
                    }
                });
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

/// tracing to stderr; RUST_LOG wins over the config. Under systemd
/// (JOURNAL_STREAM set) journald adds timestamps, so we leave them out.
pub(crate) fn init_logging(default: &str) {
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
