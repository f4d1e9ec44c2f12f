//! One attempt to hand a notification over: an HTTP(S) POST (hyper over
//! tokio, rustls with ring) or a command run with the body on stdin. The
//! caller bounds each attempt with the target's timeout and retries.

use super::message::Body;
use crate::config::{check_url, AlarmKind, Format, NotifyConfig};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls;

/// Where an http(s) URL points.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Self, String> {
        check_url(url)?;
        let (tls, rest) = match url.strip_prefix("https://") {
            Some(r) => (true, r),
            None => (false, url.trim_start_matches("http://")),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let default_port = if tls { 443 } else { 80 };
        let bad = |why: &str| format!("{url:?}: {why}");
        if authority.contains('@') {
            return Err(bad("credentials in the URL: use token-file"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = after.strip_prefix(':').map(|p| p.parse::<u16>());
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse::<u16>())),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            None => default_port,
            Some(Ok(p)) if p > 0 => p,
            Some(_) => return Err(bad("bad port")),
        };
        Ok(Self {
            tls,
            host,
            port,
            path,
        })
    }

    /// What status shows: never the path (webhook URLs carry secrets).
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}/…", self.host, self.port)
    }
}

pub enum Via {
    Http {
        url: Url,
        token: Option<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
    Command(Vec<String>),
}

/// A `[[notify]]` entry with its files read.
pub struct Target {
    pub name: String,
    pub on: Vec<AlarmKind>,
    pub format: Format,
    pub interval: Duration,
    pub retries: u32,
    pub timeout: Duration,
    pub via: Via,
}

impl Target {
    /// Reads what the entry names (url-file, token-file, ca-file); each
    /// error names its key.
    pub fn prepare(cfg: &NotifyConfig, index: usize) -> Result<Self> {
        let name = cfg.name(index);
        let key = |k: &str| format!("[[notify]] {name}: {k}");
        let read = |k: &str, p: &PathBuf| -> Result<String> {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{} {}: cannot read", key(k), p.display()))?;
            Ok(text.trim().to_string())
        };
        let via = if let Some(cmd) = &cfg.command {
            // validate() found the program when the config was read.
            Via::Command(cmd.clone())
        } else {
            let (k, text) = match (&cfg.url, &cfg.url_file) {
                (Some(u), _) => ("url", u.clone()),
                (None, Some(p)) => ("url-file", read("url-file", p)?),
                (None, None) => anyhow::bail!("{}: no url", key("url")),
            };
            let url = Url::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", key(k)))?;
            let token = cfg
                .token_file
                .as_ref()
                .map(|p| read("token-file", p))
                .transpose()?;
            let tls = if url.tls {
                Some(Arc::new(
                    tls_config(cfg.ca_file.as_ref()).with_context(|| key("ca-file"))?,
                ))
            } else {
                None
            };
            Via::Http { url, token, tls }
        };
        Ok(Self {
            name,
            on: cfg.on.clone(),
            format: cfg.format,
            interval: Duration::from_secs_f64(cfg.interval_s),
            retries: cfg.retries,
            timeout: Duration::from_secs_f64(cfg.timeout_s),
            via,
        })
    }

    pub fn describe(&self) -> String {
        match &self.via {
            Via::Http { url, .. } => url.redacted(),
            Via::Command(c) => c.first().cloned().unwrap_or_default(),
        }
    }

    /// One attempt, bounded by the timeout.
    pub async fn attempt(&self, body: &Body) -> Result<(), String> {
        let run = async {
            match &self.via {
                Via::Http { url, token, tls } => {
                    post(url, token.as_deref(), tls.clone(), body).await
                }
                Via::Command(cmd) => run_command(cmd, &body.bytes).await,
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

/// The system's roots, or the CA file's certificates.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bundle = ca_file
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&bundle)
        .with_context(|| format!("{}: cannot read", bundle.display()))?
    {
        let cert = cert.with_context(|| format!("{}: not PEM", bundle.display()))?;
        // A certificate the store cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        anyhow::bail!("{}: no CA certificate in it", bundle.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn post(
    url: &Url,
    token: Option<&str>,
    tls: Option<Arc<rustls::ClientConfig>>,
    body: &Body,
) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("{}: {e}", url.redacted()))?;
    let mut req = hyper::Request::post(url.path.as_str())
        .header("host", host_header(url))
        .header("content-type", body.content_type)
        .header("user-agent", concat!("drsnd/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &body.headers {
        req = req.header(*k, v.as_str());
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.bytes.clone())))
        .map_err(|e| format!("request: {e}"))?;
    let status = match tls {
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| format!("{}: {e}", url.host))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{}: TLS: {e}", url.redacted()))?;
            exchange(TokioIo::new(stream), req).await?
        }
        None => exchange(TokioIo::new(tcp), req).await?,
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {status}", url.redacted()))
    }
}

fn host_header(url: &Url) -> String {
    let default = if url.tls { 443 } else { 80 };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    if url.port == default {
        host
    } else {
        format!("{host}:{}", url.port)
    }
}

async fn exchange<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<hyper::StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection is driven beside the request and ends with it.
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    driver.abort();
    Ok(resp?.status())
}

async fn run_command(cmd: &[String], body: &[u8]) -> Result<(), String> {
    let (program, args) = cmd.split_first().ok_or("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin still ran.
        let _ = stdin.write_all(body).await;
    }
    let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program}: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let u = Url::parse("https://hooks.slack.com/services/T0/B0/XX").expect("url");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "hooks.slack.com", 443)
        );
        assert_eq!(u.path, "/services/T0/B0/XX");
        assert_eq!(u.redacted(), "https://hooks.slack.com:443/…");
        let u = Url::parse("http://[::1]:8080?x=1").expect("v6");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/?x=1")
        );
        assert_eq!(host_header(&u), "[::1]:8080");
        assert!(Url::parse("http://user:pw@h/").is_err());
        assert!(Url::parse("http://h:0/").is_err());
        assert!(Url::parse("mailto:a@b").is_err());
    }
}
