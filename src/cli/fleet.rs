//! `drsnd fleet`: every node and stream a broker knows, from the retained
//! topics (status, meta, state), then each event as it comes; for a
//! maintenance desk without a dashboard. `--once` prints the table and exits.

use crate::config::BrokerUrl;
use anyhow::{bail, Context, Result};
use clap::Args;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct FleetArgs {
    /// mqtt://host[:port] or mqtts://host[:port].
    #[arg(long)]
    broker: String,
    /// Only this site (default: every site).
    #[arg(long)]
    site: Option<String>,
    /// Print the table of retained state and exit.
    #[arg(long)]
    once: bool,
    /// How long to gather retained messages before the table, seconds.
    #[arg(long, default_value_t = 1.0)]
    wait_s: f64,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// CA certificates (PEM) for mqtts (default: the system's).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// What the broker holds of one node.
#[derive(Default)]
struct Node {
    status: String,
    streams: BTreeMap<String, Value>,
}

pub fn fleet(a: &FleetArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    rt.block_on(run(a))
}

fn options(a: &FleetArgs) -> Result<MqttOptions> {
    let url = BrokerUrl::parse(&a.broker).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let id = format!("drsnd-fleet-{}", std::process::id());
    let mut o = MqttOptions::new(id, &url.host, url.port);
    o.set_keep_alive(Duration::from_secs(30));
    if let Some(u) = &a.username {
        let pw = match &a.password_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("--password-file {}", p.display()))?
                .trim_end()
                .to_string(),
            None => String::new(),
        };
        o.set_credentials(u, pw);
    }
    if url.tls {
        let path = a
            .ca_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        let ca = std::fs::read(&path).with_context(|| format!("--ca-file {}", path.display()))?;
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: None,
        }));
    }
    Ok(o)
}

async fn run(a: &FleetArgs) -> Result<()> {
    let (client, mut events) = AsyncClient::new(options(a)?, 64);
    let site = a.site.clone().unwrap_or_else(|| "+".into());
    let filter = format!("drsnd/v1/{site}/#");
    client
        .subscribe(&filter, QoS::AtLeastOnce)
        .await
        .context("subscribe")?;
    let mut nodes: BTreeMap<(String, String), Node> = BTreeMap::new();
    let gather = tokio::time::sleep(Duration::from_secs_f64(a.wait_s.max(0.1)));
    tokio::pin!(gather);
    let mut printed = false;
    loop {
        tokio::select! {
            _ = &mut gather, if !printed => {
                print_table(&nodes);
                printed = true;
                if a.once {
                    let _ = client.disconnect().await;
                    return Ok(());
                }
            }
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let text = String::from_utf8_lossy(&p.payload);
                    if let Some(line) = take(&mut nodes, &p.topic, &text) {
                        if printed {
                            println!("{line}");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => bail!("{}: {e}", a.broker),
            }
        }
    }
}

/// Files one message under its node; returns a line for a live event.
fn take(nodes: &mut BTreeMap<(String, String), Node>, topic: &str, text: &str) -> Option<String> {
    let parts: Vec<&str> = topic.split('/').collect();
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match parts.as_slice() {
        ["drsnd", "v1", site, node, "status"] => {
            let n = nodes
                .entry((site.to_string(), node.to_string()))
                .or_default();
            n.status = v["status"].as_str().unwrap_or("?").to_string();
            Some(format!("{site}/{node}: {}", n.status))
        }
        ["drsnd", "v1", site, node, stream, "state"] => {
            let n = nodes
                .entry((site.to_string(), node.to_string()))
                .or_default();
            n.streams.insert(stream.to_string(), v);
            None
        }
        ["drsnd", "v1", site, node, stream, "event"] => Some(format!(
            "{} {site}/{node}/{stream}: {} -> {}",
            clock(v["time"].as_f64()),
            describe(&v["from"]),
            describe(&v["to"])
        )),
        _ => None,
    }
}

fn describe(state: &Value) -> String {
    let kind = state["state"].as_str().unwrap_or("?");
    let detail = ["class", "reason", "zone"]
        .iter()
        .find_map(|k| state[*k].as_str());
    match detail {
        Some(d) => format!("{kind} ({d})"),
        None => kind.to_string(),
    }
}

/// UTC time of day (the fleet spans time zones; UTC is unambiguous).
fn clock(t: Option<f64>) -> String {
    let Some(t) = t.filter(|t| t.is_finite() && *t >= 0.0) else {
        return "--:--:--".into();
    };
    let s = t as u64 % 86_400;
    format!("{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

fn print_table(nodes: &BTreeMap<(String, String), Node>) {
    println!(
        "{:<12} {:<16} {:<8} {:<16} {:<24} SINCE",
        "SITE", "NODE", "STATUS", "STREAM", "STATE"
    );
    for ((site, node), n) in nodes {
        if n.streams.is_empty() {
            println!(
                "{site:<12} {node:<16} {:<8} {:<16} {:<24} -",
                n.status, "-", "-"
            );
        }
        for (stream, v) in &n.streams {
            println!(
                "{site:<12} {node:<16} {:<8} {stream:<16} {:<24} {}",
                n.status,
                describe(&v["state"]),
                clock(v["since"].as_f64())
            );
        }
    }
}
