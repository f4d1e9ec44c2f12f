//! `[[notify]]`: alarm notifications to a person (see `sinks::notify` and
//! docs/fleet.md): an HTTP webhook or a command, on chosen event kinds.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyConfig {
    /// Names the target in logs, `status` and /metrics (default `notify-<n>`).
    #[serde(default)]
    pub name: Option<String>,
    /// The event kinds that notify.
    pub on: Vec<AlarmKind>,
    /// An http:// or https:// webhook, POSTed the event.
    #[serde(default)]
    pub url: Option<String>,
    /// The webhook's URL read from a file (Slack and Teams URLs are secrets).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// A program and its arguments, run with the notification on stdin.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub format: Format,
    /// Sent as `Authorization: Bearer <token>` (ntfy access tokens, ...).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) for an https receiver with a private CA;
    /// default the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// At most one notification per stream and kind in this many seconds;
    /// the ones held back are counted and the next one says how many.
    #[serde(default = "default_interval")]
    pub interval_s: f64,
    /// Attempts after the first failed one, waiting 1 s doubling to 60 s.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Per attempt: the whole request, or the command's run.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

/// What an event is, as `on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmKind {
    Fault,
    Anomaly,
    NoSignal,
    ZoneC,
    ZoneD,
    Degrading,
    /// Back to healthy from an alarm (fault, anomaly, no-signal).
    Recovered,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fault => "fault",
            Self::Anomaly => "anomaly",
            Self::NoSignal => "no-signal",
            Self::ZoneC => "zone-c",
            Self::ZoneD => "zone-d",
            Self::Degrading => "degrading",
            Self::Recovered => "recovered",
        }
    }
}

/// The body: drsnd's JSON, or what a chat or push service expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
    Teams,
    Ntfy,
}

fn default_interval() -> f64 {
    300.0
}
fn default_retries() -> u32 {
    5
}
fn default_timeout() -> f64 {
    10.0
}

/// Checks a webhook URL's shape (`url`, or the text of `url-file`).
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// Where a command's program is: a path, or found on $PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| runnable(p))
}

impl NotifyConfig {
    /// Shape checks (the error is the key and why); files are read at start.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let targets = [
            self.url.is_some(),
            self.url_file.is_some(),
            self.command.is_some(),
        ];
        if targets.iter().filter(|&&t| t).count() != 1 {
            return Err(("url", "give exactly one of url, url-file, command".into()));
        }
        if let Some(url) = &self.url {
            check_url(url).map_err(|e| ("url", e))?;
        }
        if let Some(cmd) = &self.command {
            let program = cmd.first().filter(|p| !p.is_empty());
            let program = program.ok_or(("command", "is empty".to_string()))?;
            if find_program(program).is_none() {
                return Err((
                    "command",
                    format!("{program:?} is not an executable file (nor on $PATH)"),
                ));
            }
        }
        if self.on.is_empty() {
            return Err(("on", "names no event kind".into()));
        }
        if !(self.interval_s >= 0.0 && self.interval_s <= 7.0 * 86400.0) {
            return Err((
                "interval-s",
                format!("{} is out of range 0..=604800", self.interval_s),
            ));
        }
        if !(self.timeout_s >= 0.1 && self.timeout_s <= 300.0) {
            return Err((
                "timeout-s",
                format!("{} is out of range 0.1..=300", self.timeout_s),
            ));
        }
        if self.retries > 100 {
            return Err(("retries", format!("{} is above 100", self.retries)));
        }
        if self.command.is_some() && (self.token_file.is_some() || self.ca_file.is_some()) {
            return Err(("token-file", "token-file and ca-file are for a url".into()));
        }
        Ok(())
    }

    pub fn name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("notify-{}", index + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> NotifyConfig {
        toml::from_str(text).expect("notify table")
    }

    #[test]
    fn a_url_must_be_http_and_a_command_must_exist() {
        let bad = [
            ("on = [\"fault\"]\nurl = \"ftp://x/y\"", "url"),
            ("on = [\"fault\"]\nurl = \"https:///path\"", "url"),
            (
                "on = [\"fault\"]\ncommand = [\"/nonexistent/notify-send\"]",
                "command",
            ),
            (
                "on = [\"fault\"]\ncommand = [\"no-such-program-anywhere\"]",
                "command",
            ),
            ("on = [\"fault\"]", "url"),
            ("on = []\nurl = \"http://h/\"", "on"),
            (
                "on = [\"fault\"]\nurl = \"http://h/\"\ninterval-s = -1",
                "interval-s",
            ),
        ];
        for (text, key) in bad {
            assert_eq!(cfg(text).validate().map_err(|e| e.0), Err(key), "{text}");
        }
        assert!(
            cfg("on = [\"fault\", \"zone-d\"]\nurl = \"https://ntfy.sh/pump\"")
                .validate()
                .is_ok()
        );
        assert!(
            cfg("on = [\"recovered\"]\ncommand = [\"sh\", \"-c\", \"cat\"]")
                .validate()
                .is_ok()
        );
        assert!(toml::from_str::<NotifyConfig>("on = [\"fire\"]\nurl = \"http://h\"").is_err());
    }
}
