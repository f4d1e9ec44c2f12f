//! `drsnd watch`: a subscriber for people. One line per frame with label,
//! confidence, level and the mean threshold of every shrinkage unit; status
//! lines in between. `--json` passes the daemon's lines through unchanged.

use crate::protocol::{Filter, Message};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

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

pub fn watch(a: &WatchArgs) -> Result<()> {
    let mut sock = UnixStream::connect(&a.socket)
        .with_context(|| format!("cannot connect to {}", a.socket.display()))?;
    let filter = Filter {
        types: None,
        streams: (!a.streams.is_empty()).then(|| a.streams.clone()),
        thresholds: a.no_thresholds.then_some(false),
    };
    if filter.streams.is_some() || filter.thresholds.is_some() {
        let mut line = serde_json::to_string(&filter)?;
        line.push('\n');
        sock.write_all(line.as_bytes())?;
    }
    let reader = BufReader::new(sock);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut frames = 0u64;
    // Each stream's machine state, shown in front of its frames.
    let mut machines: HashMap<String, String> = HashMap::new();
    for line in reader.lines() {
        let line = line.context("connection lost")?;
        if a.json {
            writeln!(out, "{line}")?;
        } else {
            match serde_json::from_str::<Message>(&line) {
                Ok(m) => {
                    track(&mut machines, &m);
                    writeln!(out, "{}", render(&m, &machines))?
                }
                Err(_) => writeln!(out, "? {line}")?,
            }
        }
        if line.contains("\"type\":\"frame\"") {
            frames += 1;
            if a.count.is_some_and(|c| frames >= c) {
                break;
            }
        }
    }
    Ok(())
}

fn track(machines: &mut HashMap<String, String>, m: &Message) {
    match m {
        Message::Hello(h) => {
            for s in &h.streams {
                machines.insert(s.name.clone(), s.machine.name().to_uppercase());
            }
        }
        Message::Event(e) => {
            if let Some(s) = e.to.machine() {
                machines.insert(e.stream.clone(), s.name().to_uppercase());
            }
        }
        Message::Status(st) => {
            for s in &st.streams {
                machines.insert(s.name.clone(), s.machine.name().to_uppercase());
            }
        }
        _ => {}
    }
}

fn render(m: &Message, machines: &HashMap<String, String>) -> String {
    match m {
        Message::Hello(h) => format!(
            "connected: {} model {} {} ({} Hz, frames of {}), streams: {}\n{:<16} {:<12} {:>7}  {:<14} {:>6}  {:>8} {:>8}  mean tau per unit",
            h.daemon,
            h.model.name,
            h.model.version,
            h.model.sample_rate,
            h.model.frame_length,
            h.streams.iter().map(|s| format!("{} ({})", s.name, s.machine.name())).collect::<Vec<_>>().join(", "),
            "MACHINE",
            "stream",
            "seq",
            "label",
            "conf",
            "rms",
            "peak"
        ),
        Message::Frame(f) => {
            let taus: Vec<String> = f
                .thresholds
                .iter()
                .flatten()
                .map(|t| format!("{:.3}", t.iter().sum::<f32>() / t.len().max(1) as f32))
                .collect();
            let flags = if f.flags.is_empty() { String::new() } else { format!("  [{}]", f.flags.join(",")) };
            // Streams whose source names its units: velocity and zone; then
            // the other analyses.
            let physics = match (f.velocity_rms_mm_s.flatten(), f.iso_zone.flatten()) {
                (Some(v), Some(z)) => format!("  {v:.2} mm/s {z}"),
                _ => String::new(),
            } + &beside(f);
            let machine = machines.get(&f.stream).map_or("?", String::as_str);
            // A family head's verdict first: it is what the machine state follows.
            let label = match &f.family {
                Some(family) => format!("{family}/{}", f.label),
                None => f.label.clone(),
            };
            format!(
                "{:<16} {:<12} {:>7}  {:<14} {:>5.1}%  {:>8.4} {:>8.4}  {}{}{}",
                machine,
                f.stream,
                f.seq,
                label,
                f.family_confidence.unwrap_or(f.confidence) * 100.0,
                f.rms,
                f.peak,
                taus.join(" "),
                physics,
                flags
            )
        }
        Message::Status(s) => {
            let streams: Vec<String> = s
                .streams
                .iter()
                .map(|x| format!("{} {} frames, {} overrun, {} dropped", x.name, x.frames, x.overrun_samples, x.dropped_frames))
                .collect();
            format!("-- status {} up {:.0}s: {} | {} client(s)", s.state, s.uptime_s, streams.join("; "), s.clients.len())
        }
        Message::Event(e) => format!(
            "== {} is now {} (was {}, since {:.1} s into the stream; confidence {:.0}%, {} frames){}",
            e.stream,
            e.to.name().to_uppercase(),
            e.from.name(),
            e.stream_time_s,
            e.confidence * 100.0,
            e.evidence.frames,
            opinions(&e.evidence)
        ),
        Message::Lagged(l) => format!("-- lagged: missed {} messages", l.missed),
        Message::Error(e) => format!("-- error: {}", e.message),
        Message::Ack(a) => format!("-- {} {}: {} s", a.cmd, a.stream, a.seconds),
    }
}

/// Into a fault: who named it, and what each source said. A trend:
/// the score's level against its normal, and the time to the alarm.
fn opinions(ev: &crate::monitor::Evidence) -> String {
    if let Some(t) = &ev.trend {
        let eta = t.eta_h.map_or_else(
            || "not rising".to_string(),
            |h| format!("alarm in about {h:.1} h"),
        );
        return format!(
            "\n   anomaly level {:.3} (normal {:.3}), rise z {:.1}, {eta}",
            t.level, t.reference, t.z
        );
    }
    let Some(source) = ev.family_source else {
        return String::new();
    };
    let mut out = format!("\n   named by {}", source.as_str());
    if let Some(n) = &ev.network {
        let trust = if n.trusted { "" } else { ", out of its domain" };
        out += &format!(
            "; network {} {:.0}%{trust}",
            n.family,
            n.probability * 100.0
        );
    }
    if let Some(e) = &ev.envelope {
        out += &format!(
            "; envelope {} at {:.1} Hz +{:.1} dB ({:.0} rpm, {})",
            e.family, e.line_hz, e.prominence_db, e.speed_rpm, e.speed_source
        );
    }
    if let Some(a) = ev.mean_anomaly {
        out += &format!("; anomaly {a:.2}");
    }
    out
}

/// The other analyses' word beside the network's, where the stream has
/// them: the anomaly score (or how far its baseline has learned), the
/// family the envelope names, the input SNR the denoiser sees.
fn beside(f: &crate::protocol::FrameMsg) -> String {
    let mut out = String::new();
    match (f.anomaly, f.learning) {
        (Some(a), _) => out += &format!("  anomaly {a:.2}"),
        (None, Some(l)) => out += &format!("  learning {:.0}%", l * 100.0),
        _ => {}
    }
    if let Some(Some(e)) = &f.envelope {
        if e.family != "none" {
            out += &format!("  envelope {}", e.family);
        }
    }
    if let Some(s) = &f.speed {
        out += &format!("  {:.0} rpm ({})", s.rpm, s.source);
    }
    if let Some(Some(snr)) = f
        .denoise
        .as_ref()
        .map(|d| d.as_ref().and_then(|d| d.snr_db))
    {
        out += &format!("  in-SNR {snr:.1} dB");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FrameMsg;

    #[test]
    fn a_fault_event_says_who_named_it_and_what_each_source_said() {
        use crate::monitor::verdict::{EnvelopeSaid, NetworkSaid, Source};
        use crate::monitor::{Evidence, State, Transition};
        let tr = Transition {
            from: State::Anomaly,
            to: State::Fault {
                class: "outer".into(),
            },
            since_s: 4.0,
            at_s: 4.5,
            confidence: 0.8,
            evidence: Evidence {
                family_source: Some(Source::Envelope),
                network: Some(NetworkSaid {
                    family: "inner".into(),
                    probability: 0.71,
                    trusted: false,
                }),
                envelope: Some(EnvelopeSaid {
                    family: "outer".into(),
                    line_hz: 104.6,
                    prominence_db: 12.3,
                    speed_rpm: 1751.0,
                    speed_source: "signal".into(),
                }),
                mean_anomaly: Some(3.2),
                ..Evidence::default()
            },
        };
        let e = crate::protocol::EventMsg::new("pump".into(), tr, 100.0);
        let line = render(&Message::Event(e), &HashMap::new());
        for want in [
            "FAULT(OUTER)",
            "named by envelope",
            "network inner 71%, out of its domain",
            "envelope outer at 104.6 Hz +12.3 dB (1751 rpm, signal)",
            "anomaly 3.20",
        ] {
            assert!(line.contains(want), "{want:?} not in {line}");
        }
    }

    #[test]
    fn a_trend_event_shows_its_level_and_time_to_alarm() {
        let t = crate::monitor::TrendEvidence {
            level: 0.52,
            reference: 0.2,
            z: 6.3,
            slope_per_h: 0.7,
            eta_h: Some(0.9),
        };
        let e = crate::protocol::EventMsg::trend("pump".into(), true, t, 1000.0, 3600.0);
        let line = render(&Message::Event(e), &HashMap::new());
        for want in [
            "pump is now DEGRADING (was steady",
            "anomaly level 0.520 (normal 0.200)",
            "alarm in about 0.9 h",
        ] {
            assert!(line.contains(want), "{want:?} not in {line}");
        }
    }

    #[test]
    fn a_frame_with_units_shows_its_velocity_and_zone() {
        let mut f = FrameMsg {
            stream: "pump".into(),
            label: "Normal".into(),
            ..Default::default()
        };
        let plain = render(&Message::Frame(f.clone()), &HashMap::new());
        assert!(!plain.contains("mm/s"), "{plain}");
        f.velocity_rms_mm_s = Some(Some(2.71));
        f.iso_zone = Some(Some('C'));
        let line = render(&Message::Frame(f), &HashMap::new());
        assert!(line.contains("2.71 mm/s C"), "{line}");
    }

    #[test]
    fn the_other_analyses_show_beside_the_network() {
        use crate::protocol::{DenoiseMsg, EnvelopeMsg};
        let mut f = FrameMsg {
            stream: "pump".into(),
            label: "Normal".into(),
            learning: Some(0.35),
            ..Default::default()
        };
        let line = render(&Message::Frame(f.clone()), &HashMap::new());
        assert!(line.contains("learning 35%"), "{line}");
        assert!(
            !line.contains("envelope") && !line.contains("SNR"),
            "{line}"
        );
        f.anomaly = Some(1.73);
        f.envelope = Some(Some(EnvelopeMsg {
            bpfo: 14.2,
            bpfi: 3.1,
            bsf: 2.0,
            family: "outer".into(),
            band_hz: [2500.0, 3250.0],
            speed_rpm: 1797.0,
        }));
        f.denoise = Some(Some(DenoiseMsg {
            snr_db: Some(4.06),
            thresholds: vec![0.1; 4],
        }));
        let line = render(&Message::Frame(f), &HashMap::new());
        assert!(
            line.contains("anomaly 1.73")
                && line.contains("envelope outer")
                && line.contains("in-SNR 4.1 dB"),
            "{line}"
        );
    }

    #[test]
    fn a_family_head_frame_shows_family_and_fine_class_with_the_family_confidence() {
        let f = FrameMsg {
            stream: "pump".into(),
            label: "IR_21".into(),
            confidence: 0.41,
            family: Some("inner".into()),
            family_confidence: Some(0.97),
            ..Default::default()
        };
        let line = render(&Message::Frame(f), &HashMap::new());
        assert!(
            line.contains("inner/IR_21") && line.contains("97.0%"),
            "{line}"
        );
    }
}
