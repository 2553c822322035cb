//! Vendor access tokens as a client sees them: one token per vendor, shared by every task of every
//! replica, fetched by exactly one caller when none is fresh.
//!
//! Where tokens are kept is the store's business (`store::vendor_tokens`); a client only needs a
//! [`TokenVault`], so this layer never imports the store.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use secrecy::SecretString;

/// A token as a vendor issued it.
pub struct FetchedToken {
    /// The token.
    pub value: SecretString,
    /// How long the vendor says it lasts.
    pub lifetime: Duration,
}

/// A token ready to use.
#[derive(Clone)]
pub struct Token {
    /// The token; it never prints.
    pub value: SecretString,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Which refresh produced it; [`TokenVault::invalidate`] names it.
    pub generation: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The place tokens are kept could not be read or written (its database is away).
#[derive(Debug, thiserror::Error)]
#[error("token store: {source}")]
pub struct VaultError {
    /// What failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError<E> {
    /// The vendor refused or failed to issue one.
    #[error(transparent)]
    Fetch(E),
    /// The shared store could not be read or written.
    #[error(transparent)]
    Store(#[from] VaultError),
}

/// A fetch of a new token, given the stored value it replaces (an OAuth2 client refreshes with it).
/// It fails with `()`: the caller keeps the vendor's own error.
pub type Fetch<'a> =
    Box<dyn FnOnce(Option<SecretString>) -> BoxFuture<'a, Result<FetchedToken, ()>> + Send + 'a>;

/// Where vendor tokens are kept, shared across tasks and replicas.
pub trait TokenVault: Send + Sync {
    /// The vendor's token: a fresh one kept, or one `fetch` gets, by one caller while others wait.
    fn get<'a>(
        &'a self,
        vendor: &'a str,
        fetch: Fetch<'a>,
    ) -> BoxFuture<'a, Result<Token, TokenError<()>>>;

    /// Marks `token` as refused (a 401): the next [`TokenVault::get`] fetches a new one, once.
    fn invalidate<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>>;

    /// The stored token, fresh or not, without fetching one.
    fn stored<'a>(&'a self, vendor: &'a str) -> BoxFuture<'a, Result<Option<Token>, VaultError>>;

    /// Removes `token` from the store (a revoked grant): the next [`TokenVault::get`] fetches anew.
    fn forget<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>>;
}

impl<T: TokenVault + ?Sized> TokenVault for std::sync::Arc<T> {
    fn get<'a>(
        &'a self,
        vendor: &'a str,
        fetch: Fetch<'a>,
    ) -> BoxFuture<'a, Result<Token, TokenError<()>>> {
        (**self).get(vendor, fetch)
    }

    fn invalidate<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        (**self).invalidate(vendor, token)
    }

    fn stored<'a>(&'a self, vendor: &'a str) -> BoxFuture<'a, Result<Option<Token>, VaultError>> {
        (**self).stored(vendor)
    }

    fn forget<'a>(
        &'a self,
        vendor: &'a str,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        (**self).forget(vendor, token)
    }
}

impl dyn TokenVault + '_ {
    /// The vendor's token, fetched with `fetch` when none is fresh; `fetch`'s own error comes back as
    /// [`TokenError::Fetch`].
    pub async fn token<E, F, Fut>(&self, vendor: &str, fetch: F) -> Result<Token, TokenError<E>>
    where
        E: Send,
        F: FnOnce(Option<SecretString>) -> Fut + Send,
        Fut: Future<Output = Result<FetchedToken, E>> + Send,
    {
        let failed: Mutex<Option<E>> = Mutex::new(None);
        let slot = &failed;
        let boxed: Fetch<'_> = Box::new(move |stored| {
            Box::pin(async move {
                fetch(stored).await.map_err(|e| {
                    *slot.lock().expect("fetch failure slot") = Some(e);
                })
            })
        });
        match self.get(vendor, boxed).await {
            Ok(token) => Ok(token),
            Err(TokenError::Store(e)) => Err(TokenError::Store(e)),
            Err(TokenError::Fetch(())) => Err(TokenError::Fetch(
                failed
                    .into_inner()
                    .expect("fetch failure slot")
                    .expect("a failed fetch records its error"),
            )),
        }
    }
}
