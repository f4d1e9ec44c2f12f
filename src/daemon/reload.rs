//! SIGHUP: the config and model are loaded again beside the running ones,
//! and a new set of analyses is built for every stream. Only when every one
//! was built does any stream get its new set: all streams swap, or none.

use crate::analyses::{Analyses, Shared, StreamSpec};
use crate::config::Config;
use crate::hub::Links;
use crate::infer::Model;
use crate::manifest::{Manifest, ModelFiles};
use anyhow::{bail, Result};

/// Re-reads the configuration for a reload.
pub type ReloadFn = dyn Fn() -> Result<Config, String> + Send + Sync;

/// A reload prepared (built, not handed out): one `Analyses` per stream, in stream order.
pub struct PreparedReload {
    pub per_stream: Vec<Analyses>,
    pub manifest: Manifest,
    /// The denoiser's manifest, with `[denoise]`.
    pub denoiser: Option<Manifest>,
    /// What changed that only a restart applies.
    pub notes: Vec<String>,
}

/// Loads and builds everything a reload needs; an error leaves nothing
/// half-done, since nothing has been handed to any stream yet.
pub fn prepare(
    reload: &ReloadFn,
    running: &Config,
    current: &Manifest,
    cells: Vec<Links>,
) -> Result<PreparedReload> {
    let streams = cells.len();
    let cfg = reload().map_err(anyhow::Error::msg)?;
    let files = ModelFiles::load(&cfg.model)?;
    let model = Model::load_checked(&files, running.max_batch)?;
    let m = &model.manifest;
    if m.sample_rate != current.sample_rate || m.frame_length != current.frame_length {
        bail!(
            "{}: takes {} samples at {} Hz, the running model {} at {} Hz; that needs a restart",
            cfg.model.display(),
            m.frame_length,
            m.sample_rate,
            current.frame_length,
            current.sample_rate
        );
    }
    if let Some(mq) = cfg.mqtt.as_ref().filter(|_| cfg.mqtt != running.mqtt) {
        // Applied at a restart, but checked now: a restart must not fail on it.
        crate::sinks::mqtt::Settings::read(mq)?;
    }
    if cfg.notify != running.notify {
        crate::sinks::notify::prepare(&cfg.notify)?;
    }
    // A new denoiser replaces the running one; adding or removing
    // [denoise] (its sockets) waits for a restart.
    let denoise = running.denoise.as_ref().map(|r| {
        cfg.denoise
            .as_ref()
            .filter(|d| d.socket_dir == r.socket_dir)
            .unwrap_or(r)
    });
    let denoiser = denoise
        .map(|d| crate::analyses::denoise::load(d, m, running.hop))
        .transpose()?;
    let manifest = m.clone();
    let denoiser_manifest = denoiser.as_ref().map(|d| d.manifest.clone());
    // What runs on each frame stays as started (a restart applies [http]).
    let shared = Shared {
        denoiser,
        classifier: model,
        spectrum: running.http.as_ref().is_some_and(|h| h.spectrum),
    };
    // Sources (and their units) stay as started: the running config's.
    let specs = StreamSpec::all(running);
    if specs.len() != streams {
        bail!(
            "{} streams run but the config names {}",
            streams,
            specs.len()
        );
    }
    let per_stream = specs
        .iter()
        .zip(cells)
        .map(|(spec, cell)| Analyses::for_stream(&shared, spec, cell))
        .collect::<Result<Vec<_>>>()?;
    Ok(PreparedReload {
        per_stream,
        manifest,
        denoiser: denoiser_manifest,
        notes: restart_notes(&cfg, running),
    })
}

/// Settings a reload reads but only a restart applies.
fn restart_notes(cfg: &Config, running: &Config) -> Vec<String> {
    [
        ("sources", cfg.sources != running.sources),
        ("socket", cfg.socket != running.socket),
        ("http", cfg.http != running.http),
        ("mqtt", cfg.mqtt != running.mqtt),
        ("notify", cfg.notify != running.notify),
        (
            "denoise",
            cfg.denoise.is_some() != running.denoise.is_some()
                || cfg.denoise.as_ref().map(|d| &d.socket_dir)
                    != running.denoise.as_ref().map(|d| &d.socket_dir),
        ),
        ("hop", cfg.hop != running.hop),
        ("max-batch", cfg.max_batch != running.max_batch),
        (
            "frames-per-wake",
            cfg.frames_per_wake != running.frames_per_wake,
        ),
        (
            "worker-threads",
            cfg.worker_threads != running.worker_threads,
        ),
        ("pool-wake", cfg.pool_wake != running.pool_wake),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(what, _)| format!("{what} changed: takes effect after a restart"))
    .collect()
}

/// The status line of a reload that worked.
pub fn summary(m: &Manifest, notes: &[String]) -> String {
    let mut msg = format!(
        "loaded model {} {} ({})",
        m.name,
        m.version,
        &m.sha256[..12.min(m.sha256.len())]
    );
    for n in notes {
        msg.push_str("; ");
        msg.push_str(n);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changes are found by comparing the settings, not their Debug text.
    #[test]
    fn settings_only_a_restart_applies_are_named() {
        let text = "[[source]]\nkind = \"wav\"\npath = \"a.wav\"\n";
        let a = Config::parse(text, "t").expect("parses");
        assert!(restart_notes(&a, &a.clone()).is_empty());
        let mut b = a.clone();
        b.sources[0].gain = 2.0;
        b.hop = 256;
        assert_eq!(
            restart_notes(&b, &a),
            vec![
                "sources changed: takes effect after a restart".to_string(),
                "hop changed: takes effect after a restart".to_string()
            ]
        );
    }
}
