//! The DRSN denoiser in tract: one frame in, the cleaned frame and every
//! shrinkage unit's thresholds out. Batch 1 only: it runs once per denoise
//! hop, and a batch buys nothing at that rate.

use super::{find, optimise, output_names, trial_load, Plan};
use crate::manifest::{Manifest, ModelFiles, ModelKind};
use anyhow::{bail, Context, Result};
use tract_onnx::prelude::*;

pub struct Denoiser {
    pub manifest: Manifest,
    plan: Plan,
    state: TypedSimpleState,
    out_ix: usize,
    tau_ix: Vec<usize>,
    snr_ix: Option<usize>,
    input: Arc<Tensor>,
    /// The model's SNR estimate of the last frame run, if it has that output.
    snr_db: Option<f32>,
}

impl Denoiser {
    /// Loads, optimises and warms up the model, checking its outputs
    /// against the manifest.
    pub fn load(files: &ModelFiles) -> Result<Self> {
        let path = files.onnx_path.display().to_string();
        let m = &files.manifest;
        m.expect(ModelKind::Denoiser, &files.manifest_path)?;
        let proto = onnx()
            .model_for_read(&mut files.onnx_bytes.as_slice())
            .with_context(|| format!("{path}: not a loadable ONNX model"))?;
        let names = output_names(&proto);
        let want = m.denoised_output.as_deref().unwrap_or("denoised");
        let out_ix = find(&names, want, &path)?;
        let tau_ix = m
            .thresholds
            .iter()
            .map(|t| find(&names, &t.name, &path))
            .collect::<Result<Vec<_>>>()?;
        let snr_ix = m
            .snr_output
            .as_deref()
            .map(|name| find(&names, name, &path))
            .transpose()?;
        let plan = optimise(&proto, 1, m.frame_length)
            .with_context(|| format!("{path}: cannot prepare the denoiser"))?;
        let state = TypedSimpleState::new(&plan)?;
        let mut d = Self {
            manifest: m.clone(),
            plan,
            state,
            out_ix,
            tau_ix,
            snr_ix,
            input: Arc::new(Tensor::zero::<f32>(&[1, 1, m.frame_length])?),
            snr_db: None,
        };
        d.warm_up(&path)?;
        Ok(d)
    }

    /// `load` after a trial load in a child process (see `infer::trial_load`).
    pub fn load_checked(files: &ModelFiles) -> Result<Self> {
        trial_load(&files.manifest_path, 1)?;
        Self::load(files)
    }

    fn warm_up(&mut self, path: &str) -> Result<()> {
        let n = self.manifest.frame_length;
        let frame: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.01).collect();
        let mut out = vec![0.0; n];
        let mut taus = Vec::new();
        self.run(&frame, &mut out, &mut taus)
            .with_context(|| format!("{path}: warm-up run failed"))?;
        if out.iter().any(|v| !v.is_finite()) {
            bail!("{path}: the denoiser gives non-finite samples on a quiet sine");
        }
        Ok(())
    }

    /// A copy for another thread: shares the optimised plan, owns its state.
    pub fn fork(&self) -> Result<Self> {
        Ok(Self {
            manifest: self.manifest.clone(),
            plan: self.plan.clone(),
            state: TypedSimpleState::new(&self.plan)?,
            out_ix: self.out_ix,
            tau_ix: self.tau_ix.clone(),
            snr_ix: self.snr_ix,
            input: Arc::new(Tensor::zero::<f32>(&[1, 1, self.manifest.frame_length])?),
            snr_db: None,
        })
    }

    /// The model's estimate of the last frame's input SNR in dB (None for
    /// a model without that output, or a non-finite value).
    pub fn snr_db(&self) -> Option<f32> {
        self.snr_db
    }

    /// Denoises one frame into `out` (same length) and sets `taus` to each
    /// unit's mean threshold. Allocates nothing once `taus` has its size.
    pub fn run(&mut self, frame: &[f32], out: &mut [f32], taus: &mut Vec<f32>) -> Result<()> {
        let n = self.manifest.frame_length;
        if frame.len() != n || out.len() != n {
            bail!(
                "frame of {} samples (out {}), the denoiser takes {n}",
                frame.len(),
                out.len()
            );
        }
        {
            let mut view = Arc::make_mut(&mut self.input).try_as_plain_ram_mut()?;
            view.as_slice_mut::<f32>()?.copy_from_slice(frame);
        }
        let outputs = self.state.run(tvec![self.input.clone().into_tvalue()])?;
        let y = outputs[self.out_ix].try_as_plain_ram()?.as_slice::<f32>()?;
        if y.len() != n {
            bail!(
                "output `{}` has {} samples, the frame {n}",
                self.manifest
                    .denoised_output
                    .as_deref()
                    .unwrap_or("denoised"),
                y.len()
            );
        }
        out.copy_from_slice(y);
        taus.clear();
        for (&i, t) in self.tau_ix.iter().zip(&self.manifest.thresholds) {
            let v = outputs[i].try_as_plain_ram()?.as_slice::<f32>()?;
            if v.len() != t.channels {
                bail!(
                    "threshold output `{}` has {} channels but the manifest says {}",
                    t.name,
                    v.len(),
                    t.channels
                );
            }
            taus.push(v.iter().sum::<f32>() / v.len().max(1) as f32);
        }
        self.snr_db = match self.snr_ix {
            Some(i) => outputs[i]
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .first()
                .copied()
                .filter(|v| v.is_finite()),
            None => None,
        };
        Ok(())
    }
}
