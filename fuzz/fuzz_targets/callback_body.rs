//! The callback ingress, on any path segment and body: read or refused, never a panic.
#![no_main]

use callback_ingress::checks::{parse_body, parse_document_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (path, body) = data.split_at(split);
    if let Ok(path) = std::str::from_utf8(path) {
        let _ = parse_document_id(path);
    }
    let _ = parse_body(body);
});
