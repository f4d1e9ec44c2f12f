//! `[mqtt]`: the fleet sink's settings (see `sinks::mqtt` and docs/fleet.md).

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttConfig {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS, rustls).
    pub broker: String,
    /// Defaults to `drsnd-<node>`; must be unique on the broker.
    pub client_id: Option<String>,
    #[serde(default = "default_site")]
    pub site: String,
    /// Defaults to the host name.
    pub node: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) the broker's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), for brokers that require one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    #[serde(default)]
    pub frames: FramesMode,
    #[serde(default = "default_frame_interval")]
    pub frame_interval_s: f64,
    /// Events and states wait here until the broker acknowledged them
    /// (default: `<[monitor] state-dir>/mqtt`, else /var/lib/drsn/mqtt).
    pub spool_dir: Option<PathBuf>,
    #[serde(default = "default_spool_mb")]
    pub spool_max_mb: f64,
    /// Sparkplug B (spec 3.0) on a second connection: the box is the edge
    /// node, each stream a device (`sinks::mqtt::sparkplug`).
    #[serde(default)]
    pub sparkplug: bool,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Home Assistant MQTT discovery: one device per stream.
    #[serde(default)]
    pub homeassistant: bool,
    #[serde(default = "default_ha_prefix")]
    pub homeassistant_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FramesMode {
    /// One summary per stream every `frame-interval-s`.
    #[default]
    Summary,
    /// Every frame as the socket has it.
    All,
    None,
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

fn default_site() -> String {
    "site".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_frame_interval() -> f64 {
    1.0
}
fn default_spool_mb() -> f64 {
    64.0
}
fn default_group_id() -> String {
    "drsnd".into()
}
fn default_ha_prefix() -> String {
    "homeassistant".into()
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{url:?} is not a broker URL like mqtts://host:8883: {why}");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (tls, default_port) = match scheme {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(bad(
                "only host and port are allowed (credentials go in username and password-file)",
            ));
        }
        let port_of = |p: &str| p.parse::<u16>().map_err(|_| bad(&format!("port {p:?}")));
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None if after.is_empty() => (h, default_port),
                None => return Err(bad("junk after ]")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (rest, default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad("no host or port 0"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

impl MqttConfig {
    /// Shape checks (the error is the key and why); files are read at start.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = BrokerUrl::parse(&self.broker).map_err(|e| ("broker", e))?;
        let topic_part = |key: &'static str, v: &str| {
            if v.is_empty() || v.contains(['/', '+', '#', '\0']) {
                Err((key, format!("{v:?} must be non-empty without / + #")))
            } else {
                Ok(())
            }
        };
        topic_part("site", &self.site)?;
        topic_part("group-id", &self.group_id)?;
        topic_part("homeassistant-prefix", &self.homeassistant_prefix)?;
        if let Some(n) = &self.node {
            topic_part("node", n)?;
        }
        if !(1..=3600).contains(&self.keep_alive_s) {
            return Err((
                "keep-alive-s",
                format!("{} is out of range 1..=3600", self.keep_alive_s),
            ));
        }
        if !(self.frame_interval_s >= 0.05 && self.frame_interval_s <= 3600.0) {
            return Err((
                "frame-interval-s",
                format!("{} is out of range 0.05..=3600", self.frame_interval_s),
            ));
        }
        if !(self.spool_max_mb >= 0.01 && self.spool_max_mb.is_finite()) {
            return Err((
                "spool-max-mb",
                format!("{} must be at least 0.01", self.spool_max_mb),
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(("cert-file", "cert-file and key-file go together".into()));
        }
        if !url.tls {
            for (key, set) in [
                ("ca-file", self.ca_file.is_some()),
                ("cert-file", self.cert_file.is_some()),
            ] {
                if set {
                    return Err((
                        key,
                        format!("needs an mqtts:// broker, not {:?}", self.broker),
                    ));
                }
            }
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(("password-file", "needs `username`".into()));
        }
        Ok(())
    }

    pub fn url(&self) -> BrokerUrl {
        // validate() ran first; a default keeps this total anyway.
        BrokerUrl::parse(&self.broker).unwrap_or(BrokerUrl {
            host: "localhost".into(),
            port: 1883,
            tls: false,
        })
    }

    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }

    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("drsnd-{}", self.node()))
    }

    pub fn spool_dir(&self, state_dir: Option<&Path>) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(|| {
            state_dir
                .map(|d| d.join("mqtt"))
                .unwrap_or_else(|| PathBuf::from("/var/lib/drsn/mqtt"))
        })
    }

    /// The password, read from `password-file` (one line).
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(p) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("[mqtt] password-file {}: cannot read: {e}", p.display()))?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
    }
}

/// The host name, for a node that names none; "node" if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace(['/', '+', '#'], "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_or_say_why_not() {
        let u = BrokerUrl::parse("mqtts://broker.plant:8884").expect("parses");
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("broker.plant", 8884, true)
        );
        let u = BrokerUrl::parse("mqtt://127.0.0.1").expect("parses");
        assert_eq!((u.port, u.tls), (1883, false));
        assert_eq!(BrokerUrl::parse("mqtts://[::1]").expect("v6").host, "::1");
        for bad in [
            "broker:1883",
            "http://x",
            "mqtt://",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/x",
        ] {
            let e = BrokerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }
}
