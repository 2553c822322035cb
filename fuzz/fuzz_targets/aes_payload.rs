//! GestoPago's AES payload: whatever is sealed opens to itself, and any text is opened or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pasarela_shared::vendors::cipher::PayloadCipher;

fuzz_target!(|data: &[u8]| {
    let cipher = PayloadCipher::from_settings(&"k".repeat(32), &"i".repeat(16)).unwrap();
    let sealed = cipher.encrypt(data);
    assert_eq!(cipher.decrypt(&sealed).unwrap(), data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cipher.decrypt(text);
    }
});
