//! Property tests: every decoder of outside input (work messages, vendor answers, environment values,
//! the AES payload) answers any input with a value or a typed refusal, never a panic, and what it says
//! of an input it refuses carries no value of it.

use std::time::Duration;

use bytes::Bytes;
use pasarela_shared::contract::messages::{DocCallback, DocSign, OtpSend, OtpVerify, VendorCall};
use pasarela_shared::contract::retry::{format_duration, parse_delays, parse_duration};
use pasarela_shared::contract::settings::parse_schedule;
use pasarela_shared::vendors::aldeamo::ValidateStatus;
use pasarela_shared::vendors::cipher::PayloadCipher;
use pasarela_shared::vendors::danaconnect::{SendCode, VerifyCode};
use pasarela_shared::vendors::shape::{parse_error, shape_of};
use pasarela_shared::vendors::signing::VendorStatus;
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, up to a few levels deep, with strings that hold `marker`.
fn json_with(marker: &'static str) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(move |s| Value::String(format!("{s}{marker}{s}"))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A work message's fields with wrong types, missing ones and extra ones mixed in.
fn message_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("request_id"),
        Just("tenant"),
        Just("destination"),
        Just("code"),
        Just("call_id"),
        Just("vendor"),
        Just("method"),
        Just("path"),
        Just("body"),
        Just("document_id"),
        Just("document_content"),
        Just("document_name"),
        Just("source"),
        Just("channel"),
        Just("provider"),
        Just("active_directory_user"),
        Just("callback_url"),
    ];
    prop::collection::vec((field, json_with("")), 0..10).prop_map(|fields| {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    })
}

fn decode_every_message(bytes: &[u8]) {
    let _ = serde_json::from_slice::<OtpSend>(bytes);
    let _ = serde_json::from_slice::<OtpVerify>(bytes);
    let _ = serde_json::from_slice::<VendorCall>(bytes);
    let _ = serde_json::from_slice::<DocCallback>(bytes);
    let _ = DocSign::from_shared(&Bytes::copy_from_slice(bytes));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn work_message_decoders_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_every_message(&bytes);
    }

    #[test]
    fn work_message_decoders_take_any_fields(value in message_like()) {
        decode_every_message(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn a_vendor_answer_shape_never_carries_a_value(value in json_with("SECRET")) {
        let text = serde_json::to_string(&value).unwrap();
        let shape = shape_of(&text);
        prop_assert!(!shape.contains("SECRET"), "{}", shape);
    }

    #[test]
    fn a_parse_error_never_quotes_the_answer(value in json_with("SECRET")) {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Answer { code: u32, data: Vec<String> }
        let text = serde_json::to_string(&value).unwrap();
        if let Err(e) = serde_json::from_str::<Answer>(&text) {
            let said = parse_error(&e);
            prop_assert!(!said.contains("SECRET"), "{}", said);
        }
    }

    #[test]
    fn vendor_code_tables_answer_any_code(code in ".{0,12}") {
        let _ = SendCode::parse(&code).verdict();
        let _ = VerifyCode::parse(&code);
        let _ = ValidateStatus::from_word(&code);
        let _ = VendorStatus::parse(&code);
        let _ = shape_of(&code);
    }

    #[test]
    fn environment_durations_take_any_text(raw in ".{0,24}") {
        let _ = parse_duration(&raw);
        let _ = parse_delays(&raw);
        let _ = parse_schedule(&raw);
    }

    #[test]
    fn a_duration_written_reads_back(ms in 1u64..10_000_000) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
    }

    #[test]
    fn the_aes_payload_round_trips_and_any_text_is_refused_or_read(
        plain in prop::collection::vec(any::<u8>(), 0..300),
        junk in ".{0,64}",
    ) {
        let cipher = PayloadCipher::from_settings(&"k".repeat(32), &"i".repeat(16)).unwrap();
        let sealed = cipher.encrypt(&plain);
        prop_assert_eq!(cipher.decrypt(&sealed).unwrap(), plain);
        let _ = cipher.decrypt(&junk);
    }
}
