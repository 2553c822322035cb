//! Bearer tokens with a lifetime, as NumRot and GestoPago issue them: each token's expiry is fixed when
//! it is issued, so a lifetime changed later reaches only tokens issued after the change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::json;

/// What a presented token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Issued and within its lifetime.
    Valid,
    /// Issued, but past its lifetime or invalidated.
    Expired,
    /// Never issued here.
    Unknown,
}

/// Issued tokens and the lifetime new ones get.
#[derive(Debug)]
pub struct TokenStore {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    lifetime: Duration,
    expiry: HashMap<String, Instant>,
}

impl TokenStore {
    /// A store whose tokens live `lifetime_s` seconds.
    pub fn new(lifetime_s: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lifetime: Duration::from_secs(lifetime_s),
                expiry: HashMap::new(),
            }),
        }
    }

    /// The lifetime new tokens get, in seconds.
    pub fn lifetime_s(&self) -> u64 {
        self.inner.lock().expect("tokens").lifetime.as_secs()
    }

    /// Sets the lifetime new tokens get.
    pub fn set_lifetime_s(&self, seconds: u64) {
        self.inner.lock().expect("tokens").lifetime = Duration::from_secs(seconds);
    }

    /// Issues a JWT-looking token for `subject` (header, claims and a random signature, each
    /// Base64url): opaque to clients, as a real one is to anyone without the vendor's key. Returns the
    /// token and its lifetime in seconds.
    pub fn issue(&self, issuer: &str, subject: &str) -> (String, u64) {
        let mut inner = self.inner.lock().expect("tokens");
        let lifetime = inner.lifetime;
        let now = chrono::Utc::now().timestamp();
        let header = json!({ "alg": "HS256", "typ": "JWT" });
        let claims = json!({
            "iss": issuer,
            "sub": subject,
            "iat": now,
            "exp": now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let signature: [u8; 32] = rand::rng().random();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        // A lifetime too long for the clock never ends.
        let expires_at = Instant::now()
            .checked_add(lifetime)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        inner.expiry.insert(token.clone(), expires_at);
        (token, lifetime.as_secs())
    }

    /// Judges a presented token.
    pub fn check(&self, token: &str) -> TokenStatus {
        match self.inner.lock().expect("tokens").expiry.get(token) {
            None => TokenStatus::Unknown,
            Some(expires_at) if Instant::now() >= *expires_at => TokenStatus::Expired,
            Some(_) => TokenStatus::Valid,
        }
    }

    /// Expires every issued token now; they stay known, so they answer as expired, not unknown.
    pub fn invalidate(&self) {
        let now = Instant::now();
        for expires_at in self.inner.lock().expect("tokens").expiry.values_mut() {
            *expires_at = (*expires_at).min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_valid_until_their_lifetime_or_invalidation() {
        let store = TokenStore::new(3600);
        let (token, lifetime) = store.issue("sim", "demo");
        assert_eq!(lifetime, 3600);
        assert_eq!(token.split('.').count(), 3, "{token}");
        assert_eq!(store.check(&token), TokenStatus::Valid);
        assert_eq!(store.check("nope"), TokenStatus::Unknown);
        store.invalidate();
        assert_eq!(store.check(&token), TokenStatus::Expired);
        let (fresh, _) = store.issue("sim", "demo");
        assert_ne!(fresh, token);
        assert_eq!(store.check(&fresh), TokenStatus::Valid);
        store.set_lifetime_s(0);
        let (instant, lifetime) = store.issue("sim", "demo");
        assert_eq!(lifetime, 0);
        assert_eq!(store.check(&instant), TokenStatus::Expired);
    }
}
