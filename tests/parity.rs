//! Acceptance 3: tract computes what PyTorch computed, to 1e-4, for every
//! output (probabilities and every unit's thresholds), at batch 1 and in a batch.

mod common;

use drsnd::infer::{Model, Prediction};
use drsnd::manifest::ModelFiles;
use serde_json::Value;

fn parity_cases() -> (f64, Vec<Value>) {
    let path = common::root()
        .join("models")
        .join("drsn-cw-cwru10.parity.json");
    let text = std::fs::read_to_string(&path).expect("parity vectors exist");
    let doc: Value = serde_json::from_str(&text).expect("parity json");
    (
        doc["tolerance"].as_f64().expect("tolerance"),
        doc["cases"].as_array().expect("cases").clone(),
    )
}

fn worst_diff(case: &Value, pred: &Prediction, files: &ModelFiles) -> f64 {
    let outs = &case["outputs"];
    let mut worst = 0f64;
    let mut cmp = |want: &Value, got: &[f32], name: &str| {
        let want = want
            .as_array()
            .unwrap_or_else(|| panic!("output {name} missing"));
        assert_eq!(want.len(), got.len(), "{name}: length");
        for (w, g) in want.iter().zip(got) {
            assert!(g.is_finite(), "{name}: non-finite output");
            worst = worst.max((w.as_f64().expect("number") - *g as f64).abs());
        }
    };
    cmp(&outs[&files.manifest.probs_output], &pred.probs, "probs");
    if let Some(e) = &files.manifest.embedding_output {
        cmp(&outs[&e.name], &pred.embedding, &e.name);
    }
    for (t, got) in files.manifest.thresholds.iter().zip(&pred.thresholds) {
        cmp(&outs[&t.name], got, &t.name);
    }
    worst
}

#[test]
fn tract_matches_pytorch_on_every_output() {
    let files = ModelFiles::load(&common::model()).expect("model loads");
    let mut model = Model::load(&files, 8).expect("model optimises");
    let (tol, cases) = parity_cases();
    assert!(cases.len() >= 5, "need a handful of parity cases");
    let signals: Vec<Vec<f32>> = cases
        .iter()
        .map(|c| {
            c["signal"]
                .as_array()
                .expect("signal")
                .iter()
                .map(|v| v.as_f64().expect("num") as f32)
                .collect()
        })
        .collect();
    // Batch 1, one case at a time.
    for (case, x) in cases.iter().zip(&signals) {
        let mut out = Vec::new();
        model.predict(&[x.as_slice()], &mut out).expect("runs");
        let d = worst_diff(case, &out[0], &files);
        assert!(
            d <= tol,
            "case {}: |tract - torch| = {d:e} > {tol}",
            case["name"]
        );
    }
    // All cases together: a full batch of 8 goes through the batch plan.
    let refs: Vec<&[f32]> = signals.iter().map(|v| v.as_slice()).collect();
    let mut out = Vec::new();
    model.predict(&refs, &mut out).expect("runs batched");
    for (case, pred) in cases.iter().zip(&out) {
        let d = worst_diff(case, pred, &files);
        assert!(
            d <= tol,
            "batched case {}: |tract - torch| = {d:e} > {tol}",
            case["name"]
        );
    }
}

#[test]
fn thresholds_are_positive_and_bounded_by_mean_magnitude_in_layout() {
    // τ = α·A with α in (0,1): positive, one per channel per unit, as the
    // manifest says; the all-zero frame yields finite outputs.
    let files = ModelFiles::load(&common::model()).expect("model loads");
    let mut model = Model::load(&files, 1).expect("model optimises");
    let zeros = vec![0f32; files.manifest.frame_length];
    let mut out = Vec::new();
    model.predict(&[zeros.as_slice()], &mut out).expect("runs");
    let p = &out[0];
    assert!(p.probs.iter().all(|v| v.is_finite()));
    assert!((p.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    assert_eq!(p.thresholds.len(), files.manifest.thresholds.len());
    for (t, got) in files.manifest.thresholds.iter().zip(&p.thresholds) {
        assert_eq!(got.len(), t.channels);
        assert!(
            got.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{}: {got:?}",
            t.name
        );
    }
}
