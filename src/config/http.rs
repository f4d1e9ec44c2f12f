//! `[http]`: the page, SSE and Prometheus metrics (see `sinks::http`).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// Address and port; anything but loopback needs `token-file`.
    #[serde(default = "default_http_listen")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token (one line) that every request must
    /// carry, as `Authorization: Bearer ...` or the cookie `/?token=` sets.
    pub token_file: Option<PathBuf>,
    /// Event streams (`/events`) served at once.
    #[serde(default = "default_http_clients")]
    pub max_clients: usize,
    /// Frames per second per stream sent to a page (`/events?fps=N` asks
    /// for another rate, `fps=0` for every frame). Events are never thinned.
    #[serde(default = "default_http_fps")]
    pub frames_per_second: f64,
    /// Events kept for a page that reconnects with `Last-Event-ID`.
    #[serde(default = "default_http_replay")]
    pub replay_events: usize,
    /// Each frame carries its spectrum for the page (`spectrum_db`).
    #[serde(default = "default_true")]
    pub spectrum: bool,
}

fn default_http_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9750))
}
fn default_http_clients() -> usize {
    32
}
fn default_http_fps() -> f64 {
    10.0
}
fn default_http_replay() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.listen.ip().is_loopback() && self.token_file.is_none() {
            return Err((
                "listen",
                format!(
                    "[http] {} is not loopback: set `token-file` so that only holders of the token can look",
                    self.listen
                ),
            ));
        }
        if self.max_clients == 0 {
            return Err(("max-clients", "must be at least 1".into()));
        }
        if !(self.frames_per_second >= 0.0 && self.frames_per_second.is_finite()) {
            return Err((
                "frames-per-second",
                format!(
                    "{} is not a rate (0 for every frame)",
                    self.frames_per_second
                ),
            ));
        }
        Ok(())
    }

    /// The token, read from `token-file` (None: no token asked for).
    pub fn token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("[http] token-file {}: cannot read: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < 16 {
            return Err(format!(
                "[http] token-file {}: the token must be at least 16 characters",
                path.display()
            ));
        }
        Ok(Some(token.to_string()))
    }
}
