//! The model manifest (`models/<name>.json`): what the ONNX file promises.
//!
//! The daemon trusts nothing it has not checked: the manifest must parse, its
//! sha256 must match the ONNX bytes, and its output layout must match the graph
//! (checked in `infer`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Class {
    pub id: String,
    pub description: String,
    /// The fault family the class belongs to (one of the manifest's
    /// `families`); models without a family head have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

/// What a classifier's outputs name: the fine classes, the families of a
/// model with a family head (empty without), and each class's family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    pub classes: Vec<String>,
    pub families: Vec<String>,
    /// Index into `families` per class.
    pub class_family: Vec<Option<usize>>,
}

impl Labels {
    /// Classes only (a model without a family head).
    pub fn classes(classes: Vec<String>) -> Self {
        Self {
            class_family: vec![None; classes.len()],
            classes,
            families: Vec::new(),
        }
    }
}

/// The family that means "no fault": the state `healthy` needs it.
pub const NORMAL_FAMILY: &str = "normal";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdOutput {
    pub name: String,
    pub unit: usize,
    pub channels: usize,
}

/// The pooled features the classifier reads (what a baseline models).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingOutput {
    pub name: String,
    pub dims: usize,
}

/// What a model does: classify frames (`model =`) or denoise them
/// (`[denoise] model =`). Manifests without the key are classifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Classifier,
    Denoiser,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Classifier => "classifier",
            Self::Denoiser => "denoiser",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub kind: ModelKind,
    pub name: String,
    pub version: String,
    pub onnx: String,
    pub sha256: String,
    pub sample_rate: u32,
    pub frame_length: usize,
    #[serde(default = "default_probs")]
    pub probs_output: String,
    /// The family head's output (models from 2.0 on): probabilities over
    /// `families`.
    #[serde(default)]
    pub family_output: Option<String>,
    #[serde(default)]
    pub families: Vec<String>,
    /// Models exported before 1.2 have none.
    #[serde(default)]
    pub embedding_output: Option<EmbeddingOutput>,
    /// A denoiser's output: the cleaned frame, as long as the input.
    #[serde(default)]
    pub denoised_output: Option<String>,
    /// A denoiser's estimate of the input's SNR in dB, one value per frame
    /// (denoisers from 2.0.0; older ones are judged by what they removed).
    #[serde(default)]
    pub snr_output: Option<String>,
    /// A classifier's classes (a denoiser has none).
    #[serde(default)]
    pub classes: Vec<Class>,
    pub thresholds: Vec<ThresholdOutput>,
    #[serde(default)]
    pub architecture: String,
    /// Everything else (input description, training, metrics) is kept for `hello`.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_probs() -> String {
    "probs".into()
}

/// A manifest together with the ONNX bytes it describes, both checked.
pub struct ModelFiles {
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    pub onnx_path: PathBuf,
    pub onnx_bytes: Vec<u8>,
}

impl ModelFiles {
    /// Loads `path`: either the manifest (.json) or the ONNX file with its
    /// manifest beside it (same stem, .json).
    pub fn load(path: &Path) -> Result<Self> {
        let manifest_path = if path.extension().is_some_and(|e| e == "onnx") {
            path.with_extension("json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read model manifest {}", manifest_path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid model manifest", manifest_path.display()))?;
        manifest.validate(&manifest_path)?;
        let onnx_path = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&manifest.onnx);
        let onnx_bytes = std::fs::read(&onnx_path).with_context(|| {
            format!(
                "cannot read ONNX model {} (named by {})",
                onnx_path.display(),
                manifest_path.display()
            )
        })?;
        let digest = hex(&Sha256::digest(&onnx_bytes));
        if digest != manifest.sha256 {
            bail!(
                "{}: sha256 is {digest}, but {} says {}: the model and its manifest disagree",
                onnx_path.display(),
                manifest_path.display(),
                manifest.sha256
            );
        }
        Ok(Self {
            manifest,
            manifest_path,
            onnx_path,
            onnx_bytes,
        })
    }
}

impl Manifest {
    fn validate(&self, path: &Path) -> Result<()> {
        let p = path.display();
        if self.sample_rate == 0 {
            bail!("{p}: key `sample_rate` must be positive");
        }
        if self.frame_length < 16 {
            bail!(
                "{p}: key `frame_length` is {}, too short",
                self.frame_length
            );
        }
        match self.kind {
            ModelKind::Classifier if self.classes.is_empty() => {
                bail!("{p}: key `classes` is empty")
            }
            ModelKind::Denoiser if self.denoised_output.is_none() => {
                bail!("{p}: a denoiser manifest needs key `denoised_output`")
            }
            _ => {}
        }
        self.validate_families(path)?;
        for t in &self.thresholds {
            if t.channels == 0 {
                bail!("{p}: threshold output `{}` has 0 channels", t.name);
            }
        }
        Ok(())
    }

    /// Refuses a model of the other kind, naming the file and the kind.
    pub fn expect(&self, kind: ModelKind, path: &Path) -> Result<()> {
        if self.kind != kind {
            bail!(
                "{}: is a {} model (key `kind`), but a {} is wanted here",
                path.display(),
                self.kind.name(),
                kind.name()
            );
        }
        Ok(())
    }

    /// A family head needs its families, `normal` among them, and every
    /// class's family must be one of them.
    fn validate_families(&self, path: &Path) -> Result<()> {
        let p = path.display();
        if self.family_output.is_none() {
            return Ok(());
        }
        if !self.families.iter().any(|f| f == NORMAL_FAMILY) {
            bail!(
                "{p}: key `families` is {:?}; a family head needs `{NORMAL_FAMILY}` among them",
                self.families
            );
        }
        for c in &self.classes {
            if let Some(f) = &c.family {
                if !self.families.contains(f) {
                    bail!(
                        "{p}: class `{}` has family `{f}`, which is not in key `families` {:?}",
                        c.id,
                        self.families
                    );
                }
            }
        }
        Ok(())
    }

    pub fn class_ids(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.id.clone()).collect()
    }

    /// The family head's families (none without a family head).
    pub fn head_families(&self) -> Vec<String> {
        match self.family_output {
            Some(_) => self.families.clone(),
            None => Vec::new(),
        }
    }

    /// What the outputs name, for frames and the monitor.
    pub fn labels(&self) -> Labels {
        let families = self.head_families();
        let class_family = self
            .classes
            .iter()
            .map(|c| {
                c.family
                    .as_ref()
                    .and_then(|f| families.iter().position(|x| x == f))
            })
            .collect();
        Labels {
            classes: self.class_ids(),
            families,
            class_family,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
