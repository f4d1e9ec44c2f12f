//! Any text as drsnd.toml: a config or an error naming the key, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = drsnd::config::Config::parse(text, "fuzz.toml") {
            // Every error names the file it came from.
            assert!(e.to_string().contains("fuzz.toml"), "{e}");
        }
    }
});
