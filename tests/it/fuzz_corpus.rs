//! Replays every input kept in fuzz/corpus/ through the fuzz targets' checks,
//! so what fuzzing found stays fixed in every test run (the fuzzing itself
//! is `fuzz/run.sh`, not part of CI).

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let ok = std::panic::catch_unwind(|| check(&data));
        assert!(ok.is_ok(), "{target}: {} breaks a promise", path.display());
        n += 1;
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
    eprintln!("{target}: {n} inputs");
}

#[test]
fn config_corpus() {
    replay("config", checks::config);
}

#[test]
fn client_command_corpus() {
    replay("client_command", checks::client_command);
}

#[test]
fn wav_reader_corpus() {
    replay("wav_reader", checks::wav_reader);
}

#[test]
fn raw_reader_corpus() {
    replay("raw_reader", checks::raw_reader);
}

#[test]
fn assembler_corpus() {
    replay("assembler", checks::assembler);
}
