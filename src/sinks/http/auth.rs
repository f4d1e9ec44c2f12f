//! The bearer token, when `[http] token-file` is set (required off
//! loopback). A request carries it as `Authorization: Bearer <token>` or in
//! the cookie that `/?token=<token>` sets (so a browser can keep it);
//! anything else is 401 and touches nothing.

use super::HttpSink;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const COOKIE: &str = "drsnd_token";

pub async fn require_token(
    State(sink): State<Arc<HttpSink>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(want) = sink.token.as_deref() else {
        return next.run(req).await;
    };
    if let Some(given) = query_token(&req) {
        if !same(given, want) {
            return refuse();
        }
        // Keep it in a cookie and drop it from the address bar.
        let cookie = format!("{COOKIE}={want}; HttpOnly; SameSite=Strict; Path=/");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_string()),
            ],
        )
            .into_response();
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("drsnd_token="))
        .next();
    match bearer.or(cookie) {
        Some(t) if same(t, want) => next.run(req).await,
        _ => refuse(),
    }
}

fn query_token(req: &Request) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
}

fn refuse() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a token is required (Authorization: Bearer, or /?token=)\n",
    )
        .into_response()
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
