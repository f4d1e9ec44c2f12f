//! `[denoise]`: the DRSN denoiser on every stream (see `analyses::denoise`).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenoiseConfig {
    /// The denoiser's manifest (.json) or ONNX file with its manifest beside it.
    pub model: PathBuf,
    /// Where each stream's denoised signal is served, as raw f32le at the
    /// model rate, on the Unix socket `<socket-dir>/<stream>.f32`.
    pub socket_dir: Option<PathBuf>,
}
