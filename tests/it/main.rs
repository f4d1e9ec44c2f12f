//! The integration tests, one binary so that they build once and libtest
//! runs them in parallel: each module starts the real `drsnd` binary on
//! real recordings (or drives it in process) and checks what a user sees.
//! `tests/soak.rs` (long runs) stays a binary of its own.

#[path = "../common/mod.rs"]
mod common;

mod alsa_capture;
mod anomaly;
mod bad_clients;
mod bad_input;
mod capture_faults;
mod clock_steps;
mod cwru_replay;
mod denoise;
mod edge_inputs;
mod envelope;
mod fanout;
mod frames_per_wake;
mod fuzz_corpus;
mod history;
mod homeassistant;
mod http;
mod in_process;
mod monitor;
mod mqtt;
mod no_alloc;
mod notify;
mod offline_live;
mod package;
mod parity;
mod physics;
mod pool;
mod properties;
mod service;
mod sparkplug;
