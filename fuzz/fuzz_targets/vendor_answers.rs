//! Every vendor answer parser, on any text: an answer with its verdict, or an error that carries the
//! answer's shape and never a value of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pasarela_shared::vendors::shape::{parse_error, shape_of};
use pasarela_shared::vendors::{aldeamo, danaconnect, numrot, signing};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<danaconnect::SendOtpResponse>(text) {
        Ok(answer) => {
            let _ = danaconnect::SendCode::parse(&answer.response_code).verdict();
        }
        Err(e) => {
            let said = parse_error(&e);
            let shape = shape_of(text);
            assert!(said.len() < 200 && shape.len() < 4096);
        }
    }
    let _ = serde_json::from_str::<danaconnect::VerifyOtpResponse>(text);
    if let Ok(answer) = serde_json::from_str::<aldeamo::SendOtpResponse>(text) {
        let _ = answer.verdict("sms");
        let _ = answer.verdict("email");
    }
    for status in [200, 400, 404] {
        let answer = pasarela_shared::vendors::http::Answer::of(status, text).expect("a real status");
        if let Err(e) = aldeamo::read_answer(&answer) {
            assert!(e.to_string().len() < 4096);
        }
    }
    let _ = numrot::token_from_body(text);
    let _ = serde_json::from_str::<signing::DownloadView<'_>>(text);
    let _ = signing::VendorStatus::parse(text);
});
