//! The page and its assets, embedded in the binary: nothing is fetched
//! from anywhere but the daemon (uPlot is vendored, see assets/README.md).

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const HISTORY_JS: &str = include_str!("assets/history.js");
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn history_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", HISTORY_JS)
}

pub async fn uplot_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

pub async fn uplot_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}
