//! drsnd: real-time machine-fault monitoring with a Deep Residual Shrinkage Network.
//!
//! The data path, top to bottom (wired in [`daemon::run`]):
//! `source` (cpal / WAV / raw PCM) -> `ring` (wait-free SPSC) -> `frame`
//! (resample, cut frames) -> `infer` (tract) -> `publish` (NDJSON over a
//! Unix socket). `config` reads the TOML file, `cli` the command line.

pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod frame;
pub mod infer;
pub mod manifest;
pub mod monitor;
pub mod notify;
pub mod protocol;
pub mod publish;
pub mod resample;
pub mod ring;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod watch;
