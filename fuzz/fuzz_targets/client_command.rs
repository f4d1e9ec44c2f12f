//! Any client line: a filter or an error message, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let streams = ["pump".to_string(), "motor".to_string()];
    match drsnd::protocol::Filter::parse(&line, &streams) {
        Ok(f) => {
            // A filter only ever names streams that exist.
            for s in f.streams.iter().flatten() {
                assert!(streams.contains(s), "accepted unknown stream {s}");
            }
        }
        Err(msg) => assert!(msg.starts_with("bad command"), "{msg}"),
    }
});
