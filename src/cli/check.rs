//! `drsnd check`: the config parses, the model loads and agrees with its
//! manifest, one frame runs, every source opens, every stream's baseline
//! reads.

use super::run::{build_config, Overrides};
use super::{init_logging, EX_CONFIG};
use crate::config::Config;
use crate::infer::Model;
use crate::manifest::ModelFiles;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub o: Overrides,
}

pub fn check(a: CheckArgs) -> ExitCode {
    init_logging("warn");
    let cfg = match build_config(&a.o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drsnd check: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match summary(&cfg) {
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

/// `drsnd check`: the config parses, the model loads and agrees with its
/// manifest, one frame runs, every source opens.
fn summary(cfg: &Config) -> Result<String> {
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
    let streams: usize = cfg
        .sources
        .iter()
        .map(|s| s.streams.iter().filter(|n| !n.is_empty()).count())
        .sum();
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
        format!(
            "hop       {} samples, max batch {}, {} frame(s) per wake",
            cfg.hop, cfg.max_batch, cfg.frames_per_wake
        ),
        format!(
            "threads   {} analysis thread(s) for {} stream(s){}",
            crate::worker::pool::size(cfg.worker_threads, streams),
            streams,
            if cfg.worker_threads == 0 {
                " (one per core)"
            } else {
                ""
            }
        ),
    ];
    if let Some(d) = &cfg.denoise {
        lines.push(denoiser(d, &m, cfg.hop)?);
    }
    lines.extend(baselines(cfg, &m)?);
    for s in &cfg.sources {
        let src = crate::source::open(s)?;
        lines.push(format!(
            "source    {}: {} Hz, {} ch -> streams {:?}",
            s.label(),
            src.rate(),
            src.channels(),
            s.streams
        ));
        if let Some(line) = bearing_line(s) {
            lines.push(line);
        }
    }
    if let Some(mq) = &cfg.mqtt {
        // The files it names are read, as at start; the broker is not asked.
        let st = crate::sinks::mqtt::Settings::read(mq)?;
        lines.push(format!(
            "mqtt      {} as {} under drsnd/v1/{}/{}/",
            mq.broker, st.client_id, mq.site, st.node
        ));
        if mq.sparkplug {
            lines.push(format!(
                "sparkplug spBv1.0/{}/NBIRTH/{} (each stream a device)",
                mq.group_id, st.node
            ));
        }
        if mq.homeassistant {
            lines.push(format!(
                "homeassistant discovery under {}/",
                mq.homeassistant_prefix
            ));
        }
    }
    // The files each target names are read, as at start; none is sent.
    let targets = crate::sinks::notify::prepare(&cfg.notify)?;
    for line in targets.describe() {
        lines.push(format!("notify    {line}"));
    }
    lines.push("ok".into());
    Ok(lines.join("\n"))
}

/// `[denoise]`: the denoiser loads for these frames and runs one.
fn denoiser(
    d: &crate::config::DenoiseConfig,
    m: &crate::manifest::Manifest,
    hop: usize,
) -> Result<String> {
    let mut den = crate::analyses::denoise::load(d, m, hop)?;
    let n = den.manifest.frame_length;
    let frame: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
    let (mut y, mut taus) = (vec![0.0; n], Vec::new());
    let t = std::time::Instant::now();
    den.run(&frame, &mut y, &mut taus)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let dm = &den.manifest;
    let socket = d
        .socket_dir
        .as_ref()
        .map_or("no socket-dir".to_string(), |s| {
            format!("sockets {}/<stream>.f32", s.display())
        });
    Ok(format!(
        "denoiser  {} {} (sha256 {}, matches), {} units, one frame {ms:.3} ms, {socket}",
        dm.name,
        dm.version,
        &dm.sha256[..12.min(dm.sha256.len())],
        taus.len()
    ))
}

/// Each stream's baseline as the daemon would find it: a file that cannot
/// be used is an error, as at start; one of another model is set aside.
fn baselines(cfg: &Config, m: &crate::manifest::Manifest) -> Result<Vec<String>> {
    use crate::analyses::baseline::{Baseline, Features, LoadError};
    let features = Features::for_model(m);
    let mut lines = Vec::new();
    for spec in crate::analyses::StreamSpec::all(cfg) {
        let b = &spec.baseline;
        let learns = b.learn_s.map_or("none".to_string(), |s| {
            format!("none yet; learns from the first {s:.0} s")
        });
        let line = match b.file.as_deref().filter(|f| f.exists()) {
            None => learns,
            Some(path) => match Baseline::load(path, &m.sha256, &features) {
                Ok(base) => format!(
                    "{} ({} frames, {:.0} s)",
                    path.display(),
                    base.frames,
                    base.seconds
                ),
                Err(e @ LoadError::OtherModel { .. }) => format!("{e}; {learns}"),
                Err(LoadError::Bad(e)) => return Err(e),
            },
        };
        lines.push(format!("baseline  {}: {line}", b.stream));
    }
    Ok(lines)
}

/// A source's defect orders and frequencies at its `rpm`, and where the
/// orders came from (its geometry, or as given).
fn bearing_line(s: &crate::config::SourceConfig) -> Option<String> {
    let (rpm, b) = s.rpm.zip(s.bearing)?;
    let hz = |order: f64| order * rpm / 60.0;
    let mut line = format!(
        "bearing   {}: BPFO {:.4} BPFI {:.4} BSF {:.4}",
        s.label(),
        b.bpfo,
        b.bpfi,
        b.bsf
    );
    if let Some(ftf) = b.ftf {
        line += &format!(" FTF {ftf:.5}");
    }
    let [lo, hi] = crate::analyses::speed::SpeedSpec::new(rpm, s.rpm_range).range;
    line += &format!(
        " x shaft; at {rpm} rpm {:.1} / {:.1} / {:.1} Hz; speed measured within {lo:.0}..{hi:.0} rpm",
        hz(b.bpfo),
        hz(b.bpfi),
        hz(b.bsf)
    );
    if let Some(g) = b.geometry {
        line += &format!(
            " (from {} balls of {} mm on a {} mm pitch, contact {} deg)",
            g.balls, g.ball_mm, g.pitch_mm, g.contact_deg
        );
    }
    Some(line)
}
