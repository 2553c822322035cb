//! GestoPago's payload protection (docs/vendors/gestopago.md): the JSON payload encrypted with AES-256-CBC and
//! PKCS#7 padding under a key and IV the vendor hands out, then written as text: standard padded Base64
//! by default, or hex (`GESTOPAGO_CIPHER_ENCODING`), since the document does not say which.
//!
//! Key and IV come from settings (docs/CONTRACT.md, "Environment"): their UTF-8 bytes, or decoded when prefixed `base64:`
//! or `hex:`. Both are secrets: they never print.

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice};

/// Why a key, an IV or a ciphertext could not be used. Never quotes the secret or the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The key or IV setting does not decode to the right number of bytes.
    #[error("{what}: {problem}")]
    KeyMaterial {
        /// Which setting.
        what: &'static str,
        /// What is wrong with it, without its value.
        problem: String,
    },
    /// The text is not Base64.
    #[error("the payload is not Base64")]
    NotBase64,
    /// The text is not hex.
    #[error("the payload is not hex")]
    NotHex,
    /// The ciphertext does not decrypt under this key and IV (wrong length or padding).
    #[error("the payload does not decrypt under the configured key and IV")]
    Undecryptable,
}

/// Reads a key or IV setting: `base64:...`, `hex:...`, or the text's own UTF-8 bytes; it must come to
/// exactly `len` bytes.
pub fn key_material(
    what: &'static str,
    raw: &str,
    len: usize,
) -> Result<SecretSlice<u8>, CipherError> {
    let fail = |problem: String| CipherError::KeyMaterial { what, problem };
    let bytes = if let Some(b64) = raw.strip_prefix("base64:") {
        STANDARD
            .decode(b64.trim())
            .map_err(|_| fail("the base64: value does not decode".into()))?
    } else if let Some(hex) = raw.strip_prefix("hex:") {
        decode_hex(hex.trim()).ok_or_else(|| fail("the hex: value does not decode".into()))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() != len {
        return Err(fail(format!("must be {len} bytes, got {}", bytes.len())));
    }
    Ok(bytes.into())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How cipher bytes are written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// Standard, padded Base64: .NET's `Convert.ToBase64String`.
    #[default]
    Base64,
    /// Uppercase hex, as .NET's `Convert.ToHexString` writes it; either case is read.
    Hex,
}

impl TextEncoding {
    /// The setting's words, the default first.
    pub const CHOICES: [(&'static str, TextEncoding); 2] =
        [("base64", Self::Base64), ("hex", Self::Hex)];

    /// Writes `bytes` as text.
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Base64 => STANDARD.encode(bytes),
            Self::Hex => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        }
    }

    /// Reads text written by [`TextEncoding::encode`].
    pub fn decode(self, text: &str) -> Result<Vec<u8>, CipherError> {
        match self {
            Self::Base64 => STANDARD
                .decode(text.trim())
                .map_err(|_| CipherError::NotBase64),
            Self::Hex => decode_hex(text.trim()).ok_or(CipherError::NotHex),
        }
    }
}

/// AES-256-CBC with PKCS#7 under one key and IV, producing and reading text in one encoding.
#[derive(Clone)]
pub struct PayloadCipher {
    key: SecretSlice<u8>,
    iv: SecretSlice<u8>,
    text: TextEncoding,
}

impl std::fmt::Debug for PayloadCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayloadCipher([REDACTED])")
    }
}

impl PayloadCipher {
    /// A cipher from the key (32 bytes) and IV (16 bytes) settings, in any of their accepted forms.
    pub fn from_settings(key: &str, iv: &str) -> Result<Self, CipherError> {
        Ok(Self {
            key: key_material("GESTOPAGO_AES_KEY", key, 32)?,
            iv: key_material("GESTOPAGO_AES_IV", iv, 16)?,
            text: TextEncoding::default(),
        })
    }

    /// The same cipher writing and reading `text`.
    pub fn with_text(self, text: TextEncoding) -> Self {
        Self { text, ..self }
    }

    fn key_iv(&self) -> ([u8; 32], [u8; 16]) {
        let mut key = [0u8; 32];
        let mut iv = [0u8; 16];
        key.copy_from_slice(self.key.expose_secret());
        iv.copy_from_slice(self.iv.expose_secret());
        (key, iv)
    }

    /// Encrypts `plaintext` and returns it as text.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let (key, iv) = self.key_iv();
        let ciphertext = cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(plaintext);
        self.text.encode(&ciphertext)
    }

    /// Decrypts `text`.
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, CipherError> {
        let ciphertext = self.text.decode(text)?;
        let (key, iv) = self.key_iv();
        cbc::Decryptor::<Aes256>::new(&key.into(), &iv.into())
            .decrypt_padded_vec::<Pkcs7>(&ciphertext)
            .map_err(|_| CipherError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pasarela-gestopago-demo-key-32by";
    const IV: &str = "pasarela-demo-iv";

    /// (name, plaintext, ciphertext) from `shared/testdata/aes-256-cbc.tsv`, made with openssl.
    fn vectors() -> Vec<(String, Vec<u8>, String)> {
        include_str!("../../testdata/aes-256-cbc.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let mut cols = l.split('\t');
                let name = cols.next().unwrap().to_string();
                let plain = STANDARD.decode(cols.next().unwrap()).unwrap();
                (name, plain, cols.next().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn openssl_known_answers_for_every_padding_case() {
        let cipher = PayloadCipher::from_settings(KEY, IV).unwrap();
        let vectors = vectors();
        let names: Vec<&str> = vectors.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "empty",
                "one",
                "fifteen",
                "sixteen",
                "seventeen",
                "multi_kb"
            ]
        );
        for (name, plain, expected) in &vectors {
            assert_eq!(&cipher.encrypt(plain), expected, "{name}");
            assert_eq!(&cipher.decrypt(expected).unwrap(), plain, "{name}");
        }
        assert!(vectors[5].1.len() > 4096, "a multi-kilobyte payload");
    }

    #[test]
    fn openssl_decrypts_what_pasarela_encrypts() {
        // Skipped where no openssl binary exists; the known answers above still hold there.
        let Ok(probe) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            return;
        };
        assert!(probe.status.success());
        let cipher = PayloadCipher::from_settings(KEY, IV).unwrap();
        let json = r#"{"referencia":"A-1","monto":1500.25,"nota":"ñandú 💸"}"#;
        let text = cipher.encrypt(json.as_bytes());
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        let mut child = std::process::Command::new("openssl")
            .args([
                "enc",
                "-d",
                "-aes-256-cbc",
                "-K",
                &hex(KEY),
                "-iv",
                &hex(IV),
            ])
            .args(["-base64", "-A"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), json);
    }

    #[test]
    fn hex_text_is_the_same_ciphertext() {
        let base64 = PayloadCipher::from_settings(KEY, IV).unwrap();
        let hex = base64.clone().with_text(TextEncoding::Hex);
        for (name, plain, expected) in vectors() {
            let text = hex.encrypt(&plain);
            assert_eq!(
                text,
                TextEncoding::Hex.encode(&STANDARD.decode(&expected).unwrap()),
                "{name}"
            );
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
            assert_eq!(hex.decrypt(&text.to_lowercase()).unwrap(), plain, "{name}");
        }
        assert_eq!(hex.decrypt("0G"), Err(CipherError::NotHex));
        assert_eq!(
            hex.decrypt(&base64.encrypt(b"{}")),
            Err(CipherError::NotHex)
        );
    }

    #[test]
    fn key_material_takes_text_base64_and_hex() {
        let text = key_material("k", KEY, 32).unwrap();
        let b64 = key_material("k", &format!("base64:{}", STANDARD.encode(KEY)), 32).unwrap();
        let hex: String = KEY.bytes().map(|b| format!("{b:02X}")).collect();
        let hex = key_material("k", &format!("hex:{hex}"), 32).unwrap();
        assert_eq!(text.expose_secret(), b64.expose_secret());
        assert_eq!(text.expose_secret(), hex.expose_secret());
        let err = key_material("GESTOPAGO_AES_IV", "short-secret", 16).unwrap_err();
        assert!(err.to_string().contains("16 bytes, got 12"), "{err}");
        assert!(!err.to_string().contains("short-secret"));
        assert!(key_material("k", "hex:zz", 1).is_err());
        assert!(key_material("k", "base64:%%%", 1).is_err());
    }

    #[test]
    fn bad_ciphertexts_are_refused_without_echo() {
        let cipher = PayloadCipher::from_settings(KEY, IV).unwrap();
        assert_eq!(cipher.decrypt("not base64!"), Err(CipherError::NotBase64));
        assert_eq!(
            cipher.decrypt(&STANDARD.encode([0u8; 15])),
            Err(CipherError::Undecryptable)
        );
        let other = PayloadCipher::from_settings(KEY, "another-demo-iv!").unwrap();
        let text = cipher.encrypt(b"{}");
        // Under another IV the one block's padding no longer checks out.
        assert_eq!(other.decrypt(&text), Err(CipherError::Undecryptable));
        assert!(!format!("{cipher:?}").contains(KEY));
    }
}
