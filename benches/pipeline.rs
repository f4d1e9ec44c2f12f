//! Inner costs of the pipeline: inference, resampling, framing, a frame's
//! JSON line, fan-out. `cargo bench --bench pipeline`; bench/run.sh keeps
//! the figures in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use drsnd::frame::{Assembler, Conditioning, Framer};
use drsnd::infer::{Model, Prediction};
use drsnd::manifest::ModelFiles;
use drsnd::protocol::{FrameMsg, FrameOrigin, Message};
use drsnd::report::Report;
use drsnd::resample::Resampler;
use drsnd::sinks::Outgoing;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

const MODEL: &str = "models/drsn-cw-cwru10.json";

/// A deterministic vibration-like signal: two tones and a little hash noise.
fn signal(n: usize, rate: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate;
            let noise = ((i.wrapping_mul(2_654_435_761)) % 1000) as f32 / 5000.0 - 0.1;
            (t * 2.0 * std::f32::consts::PI * 162.0).sin() + 0.3 * (t * 6283.0).sin() + noise
        })
        .collect()
}

fn inference(c: &mut Criterion) {
    let files = ModelFiles::load(Path::new(MODEL)).expect("the shipped model");
    let frame = signal(files.manifest.frame_length, 12_000.0);
    let mut g = c.benchmark_group("infer");
    for batch in [1usize, 8, 16] {
        let mut model = Model::load(&files, batch).expect("model");
        let frames = vec![frame.as_slice(); batch];
        let mut out: Vec<Prediction> = Vec::with_capacity(batch);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, _| {
            b.iter(|| {
                out.clear();
                model.predict(&frames, &mut out).expect("predict");
            })
        });
    }
    g.finish();
}

fn resampling(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_1s");
    for from in [48_000u32, 44_100, 16_000] {
        let x = signal(from as usize, from as f32);
        let mut r = Resampler::new(from, 12_000).expect("resampler");
        g.throughput(Throughput::Elements(from as u64));
        g.bench_with_input(BenchmarkId::new("to_12k_from", from), &from, |b, _| {
            b.iter(|| {
                let mut n = 0usize;
                r.push(&x, |y| n += y.len()).expect("push");
                n
            })
        });
    }
    g.finish();
}

fn framing(c: &mut Criterion) {
    let x = signal(12_000, 12_000.0);
    let mut g = c.benchmark_group("frame_1s");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.bench_function("framer_12k_hop512", |b| {
        let mut f = Framer::new(2048, 512);
        b.iter(|| {
            let mut n = 0usize;
            f.push(&x, |_| n += 1);
            n
        })
    });
    g.bench_function("assembler_48k_to_12k", |b| {
        let cond = Conditioning {
            source_rate: 48_000,
            model_rate: 12_000,
            gain: 1.0,
            clip_level: f32::INFINITY,
        };
        let mut a = Assembler::new(cond, 2048, 512).expect("assembler");
        let x48 = signal(48_000, 48_000.0);
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            a.push(&x48, 0, &mut out).expect("push");
            out.len()
        })
    });
    g.finish();
}

fn frame_message() -> Message {
    let files = ModelFiles::load(Path::new(MODEL)).expect("the shipped model");
    let mut model = Model::load(&files, 1).expect("model");
    let x = signal(2048, 12_000.0);
    let mut out = Vec::new();
    model.predict(&[x.as_slice()], &mut out).expect("predict");
    let mut f = Framer::new(2048, 512);
    let mut frames = Vec::new();
    f.push(&x, |fr| frames.push(fr));
    let labels = files.manifest.labels();
    let pred = out.pop().expect("one prediction");
    let origin = FrameOrigin {
        stream: "main",
        labels: &labels,
        model: &files.manifest.sha256,
        denoising: false,
    };
    let report = Report {
        prediction: pred,
        ..Report::default()
    };
    let mut msg = FrameMsg::from_report(origin, 7, &frames[0], report, 1.7e9);
    msg.latency_ms = 0.2;
    Message::Frame(msg)
}

fn serialisation(c: &mut Criterion) {
    let msg = frame_message();
    c.bench_function("json/frame_line", |b| {
        b.iter(|| Outgoing::new(&msg).line.len())
    });
}

/// One frame line to N subscribers the way the publisher does it: one shared
/// serialisation, a broadcast, and one socket write per subscriber.
fn fanout(c: &mut Criterion) {
    let msg = frame_message();
    let mut g = c.benchmark_group("fanout");
    for n in [1usize, 10, 100] {
        let (tx, _) = tokio::sync::broadcast::channel::<Arc<Outgoing>>(16);
        let mut subs: Vec<_> = (0..n)
            .map(|_| {
                let (a, b) = UnixStream::pair().expect("socketpair");
                (tx.subscribe(), a, b)
            })
            .collect();
        let mut sink = vec![0u8; 1 << 16];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("subscribers", n), &n, |b, _| {
            b.iter(|| {
                let _ = tx.send(Arc::new(Outgoing::new(&msg)));
                for (rx, w, r) in subs.iter_mut() {
                    let m = rx.try_recv().expect("message");
                    w.write_all(m.line.as_bytes()).expect("write");
                    let _ = r.read(&mut sink).expect("read");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    inference,
    resampling,
    framing,
    serialisation,
    fanout
);
criterion_main!(benches);
