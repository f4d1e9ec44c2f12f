//! Inference with tract: the ONNX DRSN optimised once per batch size, with
//! concrete shapes, and checked against its manifest by a warm-up run.

use crate::manifest::{Manifest, ModelFiles, ModelKind};
pub use crate::report::Prediction;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use tract_onnx::prelude::*;

pub mod denoiser;

pub(crate) type Plan = Arc<TypedRunnableModel>;

pub struct Model {
    pub manifest: Manifest,
    /// (batch size, shared plan), smallest batch first.
    plans: Vec<(usize, Plan)>,
    /// One reusable run state per plan; each thread has its own.
    states: Vec<TypedSimpleState>,
    probs_ix: usize,
    family_ix: Option<usize>,
    embedding_ix: Option<usize>,
    tau_ix: Vec<usize>,
    /// Reused for every run: tract drops its reference when a run ends, so
    /// filling it needs no copy or allocation.
    input: Arc<Tensor>,
}

impl Model {
    /// Loads, optimises and warms up the model for batch 1 and `max_batch`.
    pub fn load(files: &ModelFiles, max_batch: usize) -> Result<Self> {
        let path = files.onnx_path.display().to_string();
        let m = &files.manifest;
        m.expect(ModelKind::Classifier, &files.manifest_path)?;
        let proto = onnx()
            .model_for_read(&mut files.onnx_bytes.as_slice())
            .with_context(|| format!("{path}: not a loadable ONNX model"))?;
        let names = output_names(&proto);
        let probs_ix = find(&names, &m.probs_output, &path)?;
        let family_ix = m
            .family_output
            .as_ref()
            .map(|f| find(&names, f, &path))
            .transpose()?;
        let embedding_ix = m
            .embedding_output
            .as_ref()
            .map(|e| find(&names, &e.name, &path))
            .transpose()?;
        let tau_ix = m
            .thresholds
            .iter()
            .map(|t| find(&names, &t.name, &path))
            .collect::<Result<Vec<_>>>()?;
        let mut batches = vec![1];
        if max_batch > 1 {
            batches.push(max_batch);
        }
        let mut plans = Vec::new();
        for &b in &batches {
            let plan = optimise(&proto, b, m.frame_length)
                .with_context(|| format!("{path}: cannot prepare the model for batch {b}"))?;
            plans.push((b, plan));
        }
        let states = plans
            .iter()
            .map(|(_, p)| TypedSimpleState::new(p))
            .collect::<TractResult<Vec<_>>>()?;
        let input = Arc::new(Tensor::zero::<f32>(&[1, 1, m.frame_length])?);
        let mut model = Self {
            manifest: m.clone(),
            plans,
            states,
            probs_ix,
            family_ix,
            embedding_ix,
            tau_ix,
            input,
        };
        model.warm_up(&path)?;
        Ok(model)
    }

    /// Runs every plan once on a quiet frame and checks the output shapes
    /// against the manifest, so a mismatch fails at load, not mid-stream.
    /// `load`, after a trial load in a child process (`trial_load`): what
    /// every command and the daemon use, so a model that makes tract panic
    /// is an error everywhere. Only the child itself calls `load` directly.
    pub fn load_checked(files: &ModelFiles, max_batch: usize) -> Result<Self> {
        trial_load(&files.manifest_path, max_batch)?;
        Self::load(files, max_batch)
    }

    fn warm_up(&mut self, path: &str) -> Result<()> {
        let n = self.manifest.frame_length;
        let frame: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.01).collect();
        for b in self.plans.iter().map(|p| p.0).collect::<Vec<_>>() {
            let frames = vec![frame.as_slice(); b];
            let mut out = Vec::new();
            self.predict(&frames, &mut out)
                .with_context(|| format!("{path}: warm-up run at batch {b} failed"))?;
            let p = &out[0];
            if p.probs.len() != self.manifest.classes.len() {
                bail!(
                    "{path}: output `{}` has {} values but the manifest lists {} classes",
                    self.manifest.probs_output,
                    p.probs.len(),
                    self.manifest.classes.len()
                );
            }
            if let Some(f) = &self.manifest.family_output {
                if p.family_probs.len() != self.manifest.families.len() {
                    bail!(
                        "{path}: output `{f}` has {} values but the manifest lists {} families",
                        p.family_probs.len(),
                        self.manifest.families.len()
                    );
                }
            }
            if let Some(e) = &self.manifest.embedding_output {
                if p.embedding.len() != e.dims {
                    bail!(
                        "{path}: output `{}` has {} values but the manifest says {}",
                        e.name,
                        p.embedding.len(),
                        e.dims
                    );
                }
            }
            for (t, got) in self.manifest.thresholds.iter().zip(&p.thresholds) {
                if got.len() != t.channels {
                    bail!(
                        "{path}: threshold output `{}` has {} channels but the manifest says {}",
                        t.name,
                        got.len(),
                        t.channels
                    );
                }
            }
        }
        Ok(())
    }

    /// A copy for another thread: shares the optimised plans, owns its state.
    pub fn fork(&self) -> Result<Self> {
        let states = self
            .plans
            .iter()
            .map(|(_, p)| TypedSimpleState::new(p))
            .collect::<TractResult<Vec<_>>>()?;
        Ok(Self {
            manifest: self.manifest.clone(),
            plans: self.plans.clone(),
            states,
            probs_ix: self.probs_ix,
            family_ix: self.family_ix,
            embedding_ix: self.embedding_ix,
            tau_ix: self.tau_ix.clone(),
            input: Arc::new(Tensor::zero::<f32>(&[1, 1, self.manifest.frame_length])?),
        })
    }

    pub fn max_batch(&self) -> usize {
        self.plans.last().map_or(1, |p| p.0)
    }

    /// Predicts every frame (each `frame_length` long), appending to `out`.
    /// Runs full batches where it can and single frames for the rest.
    pub fn predict(&mut self, frames: &[&[f32]], out: &mut Vec<Prediction>) -> Result<()> {
        let mut rest = frames;
        while !rest.is_empty() {
            let ix = self
                .plans
                .iter()
                .rposition(|p| p.0 <= rest.len())
                .unwrap_or(0);
            let b = self.plans[ix].0;
            self.run_plan(ix, &rest[..b], out)?;
            rest = &rest[b..];
        }
        Ok(())
    }

    fn run_plan(&mut self, ix: usize, frames: &[&[f32]], out: &mut Vec<Prediction>) -> Result<()> {
        let n = self.manifest.frame_length;
        let b = frames.len();
        if self.input.shape()[0] != b {
            self.input = Arc::new(Tensor::zero::<f32>(&[b, 1, n])?);
        }
        {
            let mut view = Arc::make_mut(&mut self.input).try_as_plain_ram_mut()?;
            let dst = view.as_slice_mut::<f32>()?;
            for (chunk, f) in dst.chunks_exact_mut(n).zip(frames) {
                if f.len() != n {
                    bail!("frame of {} samples, the model takes {n}", f.len());
                }
                chunk.copy_from_slice(f);
            }
        }
        let input = self.input.clone().into_tvalue();
        let outputs = self.states[ix].run(tvec![input])?;
        let probs = outputs[self.probs_ix]
            .try_as_plain_ram()?
            .as_slice::<f32>()?;
        let classes = probs.len() / b;
        let optional = |ix: Option<usize>| -> TractResult<&[f32]> {
            match ix {
                Some(i) => outputs[i].try_as_plain_ram()?.as_slice::<f32>(),
                None => Ok(&[]),
            }
        };
        let family = optional(self.family_ix)?;
        let families = family.len() / b;
        let embedding = optional(self.embedding_ix)?;
        let dims = embedding.len() / b;
        let taus = self
            .tau_ix
            .iter()
            .map(|&i| outputs[i].try_as_plain_ram()?.as_slice::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        for k in 0..b {
            out.push(Prediction {
                probs: probs[k * classes..(k + 1) * classes].to_vec(),
                family_probs: family[k * families..(k + 1) * families].to_vec(),
                embedding: embedding[k * dims..(k + 1) * dims].to_vec(),
                thresholds: taus
                    .iter()
                    .map(|t| {
                        let c = t.len() / b;
                        t[k * c..(k + 1) * c].to_vec()
                    })
                    .collect(),
            });
        }
        Ok(())
    }
}

/// The `drsnd` executable that runs trial loads, if not this process's own.
static TRIAL_EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// For a program that embeds the daemon (the in-process tests do): the
/// `drsnd` executable whose `check-model` makes the trial loads. Set once;
/// by default it is the running executable.
pub fn set_trial_executable(exe: &Path) {
    let _ = TRIAL_EXE.set(exe.to_path_buf());
}

/// Loads the model once in a child process (`drsnd check-model`) before the
/// daemon loads it itself. tract panics on some malformed graphs (a negative
/// Pad, for one), and a panic aborts the daemon (`panic = "abort"`): a bad
/// model on SIGHUP would kill a running monitor, and at start systemd would
/// restart it in a loop. In a child, it is only a clear error.
pub(crate) fn trial_load(path: &Path, max_batch: usize) -> Result<()> {
    let exe = match TRIAL_EXE.get() {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("cannot find the drsnd executable")?,
    };
    trial_load_with(&exe, path, max_batch)
}

/// `trial_load` by the executable `exe`. A child that fails without a
/// word (it could not be run as drsnd: under emulation without binfmt, a
/// wrong file) is reported by its exit status or signal.
fn trial_load_with(exe: &Path, path: &Path, max_batch: usize) -> Result<()> {
    let out = Command::new(exe)
        .arg("check-model")
        .arg(path)
        .arg("--max-batch")
        .arg(max_batch.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {} check-model", exe.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let why = crash_reason(&err);
    if why.is_empty() {
        bail!(
            "{}: the trial load ({} check-model) failed with {} and said nothing",
            path.display(),
            exe.display(),
            out.status
        );
    }
    if !err.contains(" panicked at ") && out.status.code().is_some() {
        // No panic: check-model printed the load error itself.
        bail!("{}", why.trim_start_matches("drsnd: "));
    }
    bail!(
        "{}: tract crashed while loading this model ({}): {why}",
        path.display(),
        out.status
    )
}

/// One line for logs and `status` from a crashed child's stderr: the panic
/// message and where it was raised.
fn crash_reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note:"))
        .collect();
    let at = lines.iter().position(|l| l.contains(" panicked at "));
    let text = match at {
        Some(i) => {
            let place = lines[i]
                .split_once(" panicked at ")
                .map_or("", |(_, p)| p.trim_end_matches(':'));
            format!("{} (at {place})", lines[i + 1..].join("; "))
        }
        None => lines.join("; "),
    };
    tail(&text, 1000).to_string()
}

/// The end of `s`, at most about `n` bytes, cut at a character boundary.
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub(crate) fn output_names(model: &InferenceModel) -> Vec<String> {
    let outlets = model
        .output_outlets()
        .map(|o| o.to_vec())
        .unwrap_or_default();
    outlets
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .map(str::to_string)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect()
}

pub(crate) fn find(names: &[String], want: &str, path: &str) -> Result<usize> {
    names.iter().position(|n| n == want).with_context(|| {
        format!("{path}: the manifest names output `{want}`, but the model's outputs are {names:?}")
    })
}

pub(crate) fn optimise(proto: &InferenceModel, batch: usize, frame: usize) -> Result<Plan> {
    let model = proto
        .clone()
        .with_input_fact(0, f32::fact([batch, 1, frame]).into())?
        .into_optimized()?
        .into_runnable()?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `drsnd check-model`: a shell script with `body`.
    fn child(dir: &Path, body: &str) -> std::path::PathBuf {
        let exe = dir.join("child.sh");
        std::fs::write(&exe, format!("#!/bin/sh\n{body}\n")).expect("script");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("mode");
        exe
    }

    /// A child that fails without a word is named by its exit status or
    /// signal (never an empty reason); one that says why is quoted.
    #[test]
    fn a_failing_trial_load_always_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = Path::new("m.json");
        let said = |body: &str| {
            let exe = child(dir.path(), body);
            let e = trial_load_with(&exe, model, 1).expect_err(body);
            format!("{e:#}")
        };
        let silent = said("exit 3");
        assert!(
            silent.contains("exit status: 3") && silent.contains("said nothing"),
            "{silent}"
        );
        let killed = said("kill -KILL $$");
        assert!(killed.contains("signal: 9"), "{killed}");
        let told = said("echo 'drsnd: m.json: not a manifest' >&2; exit 78");
        assert_eq!(told, "m.json: not a manifest");
        assert!(trial_load_with(&child(dir.path(), "exit 0"), model, 1).is_ok());
    }
}
