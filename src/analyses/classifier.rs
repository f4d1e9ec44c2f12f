//! The DRSN classifier as an analysis: class probabilities and the learned
//! thresholds of every shrinkage unit, per frame.

use super::Analysis;
use crate::infer::Model;
use crate::report::{Frame, Prediction, Report};
use anyhow::{bail, Result};

pub struct Classifier {
    model: Model,
    /// Reused between calls: no allocation per frame for the batch's views.
    out: Vec<Prediction>,
}

impl Classifier {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            out: Vec::with_capacity(64),
        }
    }
}

impl Analysis for Classifier {
    fn name(&self) -> &'static str {
        "classifier"
    }

    fn max_batch(&self) -> usize {
        self.model.max_batch()
    }

    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()> {
        let views: Vec<&[f32]> = frames.iter().map(|f| f.samples.as_slice()).collect();
        self.out.clear();
        self.model.predict(&views, &mut self.out)?;
        if self.out.len() != reports.len() {
            bail!(
                "the model gave {} results for {} frames",
                self.out.len(),
                reports.len()
            );
        }
        for (r, p) in reports.iter_mut().zip(self.out.drain(..)) {
            r.prediction = p;
        }
        Ok(())
    }
}
