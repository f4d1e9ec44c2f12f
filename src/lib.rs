//! drsnd: real-time machine-fault monitoring with a Deep Residual Shrinkage Network.
//!
//! The data path, top to bottom (wired in [`daemon`]):
//! `source` (cpal / WAV / raw PCM) -> `ring` (wait-free SPSC) -> `frame`
//! (resample, cut frames) -> `worker` (one thread per stream) running the
//! `analyses` (the DRSN classifier in tract, `infer`) -> `monitor` and
//! `snapshot` -> `sinks` (one broadcast; the Unix socket). `report` holds
//! the data the stages share, `config` the TOML file, `cli` the commands.
//! Modules depend one way only (scripts/check-modules.py checks it):
//! a module never uses one that uses it.

pub mod analyses;
pub mod atomic;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fault;
pub mod frame;
pub mod history;
pub mod hub;
pub mod infer;
pub mod manifest;
pub mod monitor;
pub mod notify;
pub mod pipeline;
pub mod protocol;
pub mod recorder;
pub mod report;
pub mod resample;
pub mod ring;
pub mod sinks;
pub mod snapshot;
pub mod source;
pub mod tap;
pub mod worker;
