//! The `vendor_tokens` table: vendor access tokens shared by every task of every replica.
//!
//! A token lives in `vendor_tokens`, encrypted with `PASARELA_SECRET_KEY`, and in each process's
//! memory. A caller that needs one gets the cached token while it has more than the refresh margin
//! left; otherwise one task per process (a mutex per vendor) and one process across replicas (a
//! transaction-scoped advisory lock) fetches a new one, and everyone else waits for it and reads it.
//! A 401 expires only the generation that failed, so a burst of 401s on one token causes one fetch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use chrono::Utc;
use deadpool_postgres::Pool;
use secrecy::{ExposeSecret, SecretString};

use futures::future::BoxFuture;

use crate::contract::env::{ConfigError, Env, FromEnv};
use crate::store::error::DbError;
use crate::vendors::tokens::{Fetch, FetchedToken, Token, TokenError, TokenVault, VaultError};

/// The key tokens are encrypted with (`PASARELA_SECRET_KEY`: 32 random bytes, standard Base64).
pub struct SecretKey(LessSafeKey);

/// The variable the key is read from.
const KEY_VARIABLE: &str = "PASARELA_SECRET_KEY";

impl FromEnv for SecretKey {
    /// Reads `PASARELA_SECRET_KEY`, which every worker that keeps a vendor token needs.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.get(KEY_VARIABLE).ok_or_else(|| {
            ConfigError::new(
                KEY_VARIABLE,
                "required: 32 random bytes in standard Base64 (openssl rand -base64 32)",
            )
        })?;
        Self::from_base64(&raw.to_string().into())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

impl SecretKey {
    /// Reads the Base64 form; the error never quotes the value.
    pub fn from_base64(raw: &SecretString) -> Result<Self, ConfigError> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.expose_secret().trim())
            .map_err(|_| ConfigError::new(KEY_VARIABLE, "not standard Base64"))?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            ConfigError::new(
                KEY_VARIABLE,
                format!("must be 32 bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    fn seal(&self, vendor: &str, plaintext: &str) -> (Vec<u8>, [u8; NONCE_LEN]) {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut buf = plaintext.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(vendor.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM sealing of an in-memory buffer does not fail");
        (buf, nonce)
    }

    fn open(&self, vendor: &str, ciphertext: &[u8], nonce: &[u8]) -> Option<SecretString> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(vendor.as_bytes()), &mut buf)
            .ok()?;
        Some(String::from_utf8(plain.to_vec()).ok()?.into())
    }
}

/// The shared store of vendor tokens.
pub struct TokenStore {
    pool: Pool,
    key: SecretKey,
    margin: Duration,
    cached: Mutex<HashMap<String, Token>>,
    /// The newest generation a vendor refused, per vendor: a read that began before the refusal was
    /// recorded must not bring that token back.
    refused: Mutex<HashMap<String, i64>>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenStore {
    /// A store over `pool`, encrypting with `key`, refreshing tokens `margin` before they expire.
    pub fn new(pool: Pool, key: SecretKey, margin: Duration) -> Self {
        Self {
            pool,
            key,
            margin,
            cached: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, t: &Token) -> bool {
        let margin = chrono::Duration::from_std(self.margin).unwrap_or_default();
        t.expires_at - margin > Utc::now()
    }

    /// Fresh, and newer than anything the vendor refused.
    fn usable(&self, vendor: &str, t: &Token) -> bool {
        let refused = self.refused.lock().expect("refused tokens");
        self.fresh(t) && refused.get(vendor).is_none_or(|g| t.generation > *g)
    }

    fn cached_fresh(&self, vendor: &str) -> Option<Token> {
        let cached = self
            .cached
            .lock()
            .expect("token cache")
            .get(vendor)
            .cloned();
        cached.filter(|t| self.usable(vendor, t))
    }

    fn remember(&self, vendor: &str, token: &Token) {
        if self.usable(vendor, token) {
            self.cached
                .lock()
                .expect("token cache")
                .insert(vendor.to_string(), token.clone());
        }
    }

    /// The vendor's token: cached, or read from the store, or fetched with `fetch` by exactly one
    /// caller across tasks and replicas while the others wait for it. `fetch` gets the stored value it
    /// replaces, stale or refused, if any: an OAuth2 client refreshes with what that value holds.
    pub async fn token<E, F, Fut>(&self, vendor: &str, fetch: F) -> Result<Token, TokenError<E>>
    where
        F: FnOnce(Option<SecretString>) -> Fut,
        Fut: Future<Output = Result<FetchedToken, E>>,
    {
        if let Some(t) = self.cached_fresh(vendor) {
            return Ok(t);
        }
        let flight = self
            .flights
            .lock()
            .expect("token flights")
            .entry(vendor.to_string())
            .or_default()
            .clone();
        let _in_flight = flight.lock().await;
        if let Some(t) = self.cached_fresh(vendor) {
            return Ok(t);
        }
        let mut client = self.pool.get().await.map_err(vault)?;
        if let Some(t) = self.read(&**client, vendor).await.map_err(vault)?
            && self.usable(vendor, &t)
        {
            self.remember(vendor, &t);
            return Ok(t);
        }
        let tx = client.transaction().await.map_err(vault)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('pasarela.token:' || $1, 0))",
            &[&vendor],
        )
        .await
        .map_err(vault)?;
        // Another replica may have refreshed while this one waited for the lock.
        let stored = self.read(&*tx, vendor).await.map_err(vault)?;
        if let Some(t) = stored.as_ref().filter(|t| self.usable(vendor, t)) {
            tx.commit().await.map_err(vault)?;
            self.remember(vendor, t);
            return Ok(t.clone());
        }
        let fetched = fetch(stored.map(|t| t.value))
            .await
            .map_err(TokenError::Fetch)?;
        let token = self.keep(&tx, vendor, fetched).await.map_err(vault)?;
        tx.commit().await.map_err(vault)?;
        metrics::counter!("pasarela_token_refreshes_total", "vendor" => vendor.to_string())
            .increment(1);
        tracing::info!(vendor, expires_at = %token.expires_at, "fetched a new vendor token");
        self.remember(vendor, &token);
        Ok(token)
    }

    /// Drops the cached token of `vendor` when it is `generation` or older.
    fn uncache(&self, vendor: &str, generation: i64) {
        self.cached
            .lock()
            .expect("token cache")
            .retain(|v, t| v != vendor || t.generation > generation);
    }

    /// Stores a fetched token, encrypted, as the vendor's next generation.
    async fn keep(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        vendor: &str,
        fetched: FetchedToken,
    ) -> Result<Token, DbError> {
        let (ciphertext, nonce) = self.key.seal(vendor, fetched.value.expose_secret());
        let lifetime = chrono::Duration::from_std(fetched.lifetime).unwrap_or_default();
        let expires_at = Utc::now() + lifetime;
        let row = tx
            .query_one(
                "INSERT INTO vendor_tokens (vendor, ciphertext, nonce, expires_at, generation)
                 VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (vendor) DO UPDATE SET ciphertext = EXCLUDED.ciphertext,
                     nonce = EXCLUDED.nonce, expires_at = EXCLUDED.expires_at,
                     generation = vendor_tokens.generation + 1, refreshed_at = now()
                 RETURNING generation",
                &[&vendor, &ciphertext, &nonce.as_slice(), &expires_at],
            )
            .await?;
        Ok(Token {
            value: fetched.value,
            expires_at,
            generation: row.get(0),
        })
    }

    /// The stored token, fresh or not, if it decrypts with this key.
    async fn read<C: tokio_postgres::GenericClient>(
        &self,
        client: &C,
        vendor: &str,
    ) -> Result<Option<Token>, DbError> {
        let row = client
            .query_opt(
                "SELECT ciphertext, nonce, expires_at, generation FROM vendor_tokens WHERE vendor = $1",
                &[&vendor],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.get::<_, &[u8]>(0).is_empty() {
            // Forgotten (a revoked grant): there is no token to use or refresh with.
            return Ok(None);
        }
        let Some(value) = self.key.open(vendor, row.get(0), row.get(1)) else {
            // Written under another key (a rotated PASARELA_SECRET_KEY): fetch a new one.
            tracing::warn!(
                vendor,
                "stored token does not decrypt with PASARELA_SECRET_KEY; fetching a new one"
            );
            return Ok(None);
        };
        let token = Token {
            value,
            expires_at: row.get(2),
            generation: row.get(3),
        };
        Ok(Some(token))
    }

    /// Marks `token` as refused (a 401): the next [`TokenStore::token`] fetches a new one, once, however
    /// many callers report the same token.
    pub async fn invalidate(&self, vendor: &str, token: &Token) -> Result<(), DbError> {
        {
            let mut refused = self.refused.lock().expect("refused tokens");
            let newest = refused
                .entry(vendor.to_string())
                .or_insert(token.generation);
            *newest = (*newest).max(token.generation);
        }
        self.uncache(vendor, token.generation);
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE vendor_tokens SET expires_at = now()
                 WHERE vendor = $1 AND generation = $2 AND expires_at > now()",
                &[&vendor, &token.generation],
            )
            .await?;
        Ok(())
    }
}

/// A database failure as a token's caller sees it.
fn vault(e: impl Into<DbError>) -> VaultError {
    VaultError {
        source: Box::new(e.into()),
    }
}

impl TokenVault for TokenStore {
    fn get<'a>(
        &'a self,
        vendor: &'a str,
        fetch: Fetch<'a>,
    ) -> BoxFuture<'a, Result<Token, TokenError<()>>> {
        Box::pin(self.token(vendor, fetch))
    }

    fn invalidate<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(async move {
            TokenStore::invalidate(self, vendor, token)
                .await
                .map_err(vault)
        })
    }

    fn stored<'a>(&'a self, vendor: &'a str) -> BoxFuture<'a, Result<Option<Token>, VaultError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(vault)?;
            self.read(&**client, vendor).await.map_err(vault)
        })
    }

    fn forget<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(async move {
            self.uncache(vendor, token.generation);
            let client = self.pool.get().await.map_err(vault)?;
            // The row stays, emptied, so that the next token's generation still counts up: a replica
            // that refused an older generation must not take the next one for it.
            client
                .execute(
                    "UPDATE vendor_tokens SET ciphertext = '', nonce = '', expires_at = now()
                     WHERE vendor = $1 AND generation = $2",
                    &[&vendor, &token.generation],
                )
                .await
                .map_err(vault)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&SecretString::from(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ))
        .unwrap()
    }

    #[test]
    fn sealed_tokens_open_only_for_their_vendor_and_key() {
        let k = key();
        let (ct, nonce) = k.seal("numrot", "eyJhbGciOi.token");
        assert!(!String::from_utf8_lossy(&ct).contains("eyJhbGciOi"));
        assert_eq!(
            k.open("numrot", &ct, &nonce).unwrap().expose_secret(),
            "eyJhbGciOi.token"
        );
        assert!(k.open("gestopago", &ct, &nonce).is_none());
        let other = SecretKey::from_base64(&SecretString::from(
            "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
        ))
        .unwrap();
        assert!(other.open("numrot", &ct, &nonce).is_none());
        let (_, nonce2) = k.seal("numrot", "eyJhbGciOi.token");
        assert_ne!(nonce, nonce2, "a fresh nonce per seal");
    }

    #[test]
    fn a_bad_key_is_refused_without_echo() {
        let err = SecretKey::from_base64(&SecretString::from("c2hvcnQ=")).unwrap_err();
        assert_eq!(err.variable, "PASARELA_SECRET_KEY");
        assert!(err.problem.contains("32 bytes, got 5"), "{err}");
        let err = SecretKey::from_base64(&SecretString::from("not base64!")).unwrap_err();
        assert!(!err.to_string().contains("not base64!"));
    }
}
