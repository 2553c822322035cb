//! A document as the contract carries it: base64 PDFs checked a chunk at a time without decoding them
//! whole, and the capability tokens of the vendor's callback URL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use uuid::Uuid;

/// How many base64 characters are decoded at a time (a multiple of 4): large enough for few calls, small
/// enough that the buffer is noise beside the document.
pub const CHUNK_CHARS: usize = 1 << 20;

/// The first bytes of every PDF.
const PDF_MAGIC: &[u8] = b"%PDF-";

/// Why a document's content is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Empty.
    #[error("document_content: empty")]
    Empty,
    /// Not standard, padded base64.
    #[error("document_content: not base64 ({0})")]
    NotBase64(String),
    /// Decodes, but not to a PDF.
    #[error("document_content: not a PDF (it does not start with %PDF-)")]
    NotPdf,
    /// Larger than allowed.
    #[error("document_content: {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The decoded size.
        size: usize,
        /// `PASARELA_MAX_DOCUMENT_BYTES`.
        limit: usize,
    },
}

/// The decoded size of standard, padded base64 text of `len` characters ending in `tail`.
pub fn decoded_len(text: &[u8]) -> usize {
    let padding = text.iter().rev().take(2).filter(|b| **b == b'=').count();
    text.len() / 4 * 3 - padding
}

/// Checks that `text` is standard padded base64 of a PDF of at most `limit` bytes, decoding it a chunk
/// at a time; returns the PDF's size.
pub fn check_base64_pdf(text: &[u8], limit: usize) -> Result<usize, ContentError> {
    if text.is_empty() {
        return Err(ContentError::Empty);
    }
    if !text.len().is_multiple_of(4) {
        return Err(ContentError::NotBase64(format!(
            "{} characters is not a multiple of 4; whitespace and unpadded text are not accepted",
            text.len()
        )));
    }
    let size = decoded_len(text);
    if size > limit {
        return Err(ContentError::TooLarge { size, limit });
    }
    let mut first = true;
    for_each_decoded(text, |chunk| {
        if first && !chunk.starts_with(PDF_MAGIC) {
            return Err(ContentError::NotPdf);
        }
        first = false;
        Ok(())
    })?;
    Ok(size)
}

/// Decodes `text` a chunk at a time into one reused buffer and hands each decoded chunk to `each`.
fn for_each_decoded<E: From<ContentError>>(
    text: &[u8],
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buffer = vec![0u8; CHUNK_CHARS / 4 * 3];
    for (i, chunk) in text.chunks(CHUNK_CHARS).enumerate() {
        let n = STANDARD.decode_slice(chunk, &mut buffer).map_err(|e| {
            ContentError::NotBase64(format!("at character {}: {e}", i * CHUNK_CHARS))
        })?;
        each(&buffer[..n])?;
    }
    Ok(())
}

/// A capability token for a document's callback URL: 32 random bytes, URL-safe base64.
pub fn new_capability_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a capability token, as `documents.callback_token_sha256` keeps it.
pub fn token_digest(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// Whether `token` is the one whose digest is `stored`, in constant time.
pub fn token_matches(token: &str, stored: &[u8]) -> bool {
    let digest = token_digest(token);
    aws_lc_rs::constant_time::verify_slices_are_equal(&digest, stored).is_ok()
}

/// The path callback-ingress serves a document's vendor webhook on.
pub fn callback_path(document_id: Uuid, token: &str) -> String {
    format!("/callbacks/signing/{document_id}/{token}")
}

/// The capability URL the vendor is given for a document.
pub fn callback_url(public: &url::Url, document_id: Uuid, token: &str) -> String {
    format!(
        "{}{}",
        public.as_str().trim_end_matches('/'),
        callback_path(document_id, token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn pdfs_pass_and_everything_else_is_named() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n";
        assert_eq!(check_base64_pdf(b64(pdf).as_bytes(), 1000), Ok(pdf.len()));
        assert_eq!(check_base64_pdf(b"", 1000), Err(ContentError::Empty));
        assert_eq!(
            check_base64_pdf(b64(b"GIF89a....").as_bytes(), 1000),
            Err(ContentError::NotPdf)
        );
        assert!(matches!(
            check_base64_pdf(b"%PDF", 1000),
            Err(ContentError::NotBase64(_))
        ));
        assert!(matches!(
            check_base64_pdf(b64(pdf).trim_end_matches('=').as_bytes(), 1000),
            Err(ContentError::NotBase64(_))
        ));
        assert_eq!(
            check_base64_pdf(b64(pdf).as_bytes(), 10),
            Err(ContentError::TooLarge {
                size: pdf.len(),
                limit: 10
            })
        );
    }

    #[test]
    fn a_document_spanning_many_chunks_is_checked_whole() {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend(std::iter::repeat_n(b'x', CHUNK_CHARS * 2 + 7));
        let mut text = b64(&pdf).into_bytes();
        assert_eq!(check_base64_pdf(&text, usize::MAX), Ok(pdf.len()));
        // A bad character deep inside is found, with where it is.
        let at = CHUNK_CHARS + 100;
        text[at] = b'*';
        let err = check_base64_pdf(&text, usize::MAX).unwrap_err();
        assert!(
            err.to_string().contains(&format!("{}", CHUNK_CHARS)),
            "{err}"
        );
    }

    #[test]
    fn decoded_sizes_count_the_padding() {
        for n in 0..10 {
            let data = vec![7u8; n];
            assert_eq!(decoded_len(b64(&data).as_bytes()), n);
        }
    }

    #[test]
    fn capability_tokens_are_random_and_compared_by_digest() {
        let a = new_capability_token();
        let b = new_capability_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let stored = token_digest(&a);
        assert!(token_matches(&a, &stored));
        assert!(!token_matches(&b, &stored));
        let id = Uuid::nil();
        let public = url::Url::parse("https://hooks.example/base/").unwrap();
        assert_eq!(
            callback_url(&public, id, "t0k"),
            format!("https://hooks.example/base/callbacks/signing/{id}/t0k")
        );
    }
}
