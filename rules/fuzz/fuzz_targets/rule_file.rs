//! Rule-file loading on arbitrary input: must return Ok or errors, never
//! panic, whatever the YAML, PromQL or template text holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_rules::file::{LoadOptions, load_str};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_str("fuzz.yaml", text, LoadOptions::default());
    }
});
