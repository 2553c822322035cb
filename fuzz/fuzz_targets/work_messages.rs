//! Every work message decoder, on any bytes: a message or a refusal, never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pasarela_shared::contract::messages::{DocCallback, DocSign, OtpSend, OtpVerify, VendorCall};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<OtpSend>(data);
    let _ = serde_json::from_slice::<OtpVerify>(data);
    let _ = serde_json::from_slice::<VendorCall>(data);
    let _ = serde_json::from_slice::<DocCallback>(data);
    if let Ok(doc) = DocSign::from_shared(&Bytes::copy_from_slice(data)) {
        let _ = pasarela_shared::contract::documents::check_base64_pdf(&doc.document_content, 1 << 20);
    }
});
