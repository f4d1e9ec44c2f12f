//! Acceptance 3: tract computes what PyTorch computed, to 1e-4, for every
//! output (probabilities, family probabilities, embedding and every unit's
//! thresholds), at batch 1 and in a batch: for the shipped model and for
//! an untrained model with a family head (tests/fixtures/family_head_model.py).

use crate::common;

use drsnd::infer::{Model, Prediction};
use drsnd::manifest::ModelFiles;
use serde_json::Value;

fn family_fixture() -> std::path::PathBuf {
    common::root()
        .join("tests")
        .join("fixtures")
        .join("family-head.json")
}

fn parity_cases(manifest: &std::path::Path) -> (f64, Vec<Value>) {
    let path = manifest.with_extension("parity.json");
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
    if let Some(f) = &files.manifest.family_output {
        cmp(&outs[f], &pred.family_probs, f);
    }
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
    check_parity(&common::model());
}

#[test]
fn tract_matches_pytorch_on_a_family_head_too() {
    check_parity(&family_fixture());
}

fn check_parity(manifest: &std::path::Path) {
    let files = ModelFiles::load(manifest).expect("model loads");
    let mut model = Model::load(&files, 8).expect("model optimises");
    let (tol, cases) = parity_cases(&files.manifest_path);
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

/// `drsnd classify --json` with a family head: every frame names a family
/// of the manifest's, with its probability and all four, and the lines
/// still match the frame schema.
#[test]
fn frames_of_a_family_head_carry_family_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = dir.path().join("tone.wav");
    let x: Vec<f32> = (0..24_000)
        .map(|i| 0.3 * (i as f32 * 0.07).sin() + 0.05 * ((i * 7919 % 1000) as f32 / 500.0 - 1.0))
        .collect();
    common::write_wav_f32(&wav, 12_000, &x);
    let lines = common::classify_json_with(&family_fixture(), std::slice::from_ref(&wav), 512);
    let files = ModelFiles::load(&family_fixture()).expect("fixture loads");
    let families = &files.manifest.families;
    assert_eq!(families, &["normal", "ball", "inner", "outer"]);
    assert!(lines.len() >= 10, "{} frames", lines.len());
    for f in &lines {
        let probs: Vec<f64> = f["family_probs"]
            .as_array()
            .expect("family_probs")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        assert_eq!(probs.len(), 4);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let (top, p) =
            probs
                .iter()
                .enumerate()
                .fold((0, f64::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
        assert_eq!(f["family"], families[top].as_str());
        assert!((f["family_confidence"].as_f64().expect("confidence") - p).abs() < 1e-6);
    }
    // The shipped model (2.0) has a family head too.
    let shipped = common::classify_json(std::slice::from_ref(&wav), 512);
    assert!(shipped.iter().all(|f| f["family"].is_string()));
    // A manifest that names no family head (the 1.x layout): the fields are
    // null, whatever the graph holds.
    let src = common::model();
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).expect("manifest")).expect("json");
    m.as_object_mut().expect("object").remove("family_output");
    let onnx = m["onnx"].as_str().expect("onnx").to_string();
    std::fs::copy(src.with_file_name(&onnx), dir.path().join(&onnx)).expect("copy onnx");
    let old = dir.path().join("no-family.json");
    std::fs::write(&old, m.to_string()).expect("manifest");
    let lines = common::classify_json_with(&old, std::slice::from_ref(&wav), 512);
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|f| f["family"].is_null() && f["family_probs"].is_null()));
}

#[test]
fn a_family_head_without_normal_or_with_a_stray_class_family_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = family_fixture();
    let text = std::fs::read_to_string(&src).expect("manifest");
    let onnx = src.with_extension("onnx");
    std::fs::copy(&onnx, dir.path().join("family-head.onnx")).expect("copy onnx");
    for (bad, want) in [
        (
            text.replacen("\"normal\",\n    \"ball\"", "\"healthy\",\n    \"ball\"", 1),
            "key `families`",
        ),
        (
            text.replacen("\"family\": \"inner\"", "\"family\": \"cage\"", 1),
            "family `cage`",
        ),
    ] {
        assert_ne!(bad, text, "the test's edit must apply");
        let path = dir.path().join("family-head.json");
        std::fs::write(&path, bad).expect("write");
        let err = ModelFiles::load(&path).err().expect("refused").to_string();
        assert!(
            err.contains(want) && err.contains("family-head.json"),
            "{err}"
        );
    }
}
