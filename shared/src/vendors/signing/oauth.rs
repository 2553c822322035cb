//! The signing API's OAuth2: password and refresh grants, revocation (RFC 7009), and the one way
//! every call gets its access token from the shared store.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_LIFETIME, SigningClient, SigningError, TOKEN_VENDOR, VENDOR, refused};
use crate::vendors::http::{self, VendorError};
use crate::vendors::tokens::{FetchedToken, TokenVault};

/// The token endpoint's answer, for both grants.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// What the token store keeps for this vendor: the access token and the refresh token that renews it.
#[derive(Serialize, Deserialize)]
struct StoredGrant {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// The `client_id/username` it was granted to.
    #[serde(default)]
    issued_to: Option<String>,
    /// A fingerprint of the credentials it was granted with (a SHA-256 prefix of the secret and the
    /// password, kept only inside the encrypted grant, never logged): a grant of other credentials is
    /// revoked, not used.
    #[serde(default)]
    credentials: Option<String>,
}

impl StoredGrant {
    /// Whether the grant was issued with credentials other than `current` (a grant stored before
    /// pasarela kept them is taken as the current credentials').
    fn issued_to_another(&self, current: &Credentials) -> bool {
        self.issued_to
            .as_ref()
            .is_some_and(|to| *to != current.account)
            || self
                .credentials
                .as_ref()
                .is_some_and(|c| *c != current.fingerprint)
    }
}

/// Who the configured credentials are, to tell a rotation.
pub(super) struct Credentials {
    account: String,
    fingerprint: String,
}

impl SigningClient {
    async fn grant(
        &self,
        operation: &'static str,
        body: serde_json::Value,
    ) -> Result<FetchedToken, SigningError> {
        let request = self.http.post(self.url("/auth/token")).json(&body);
        let http::Answer {
            status,
            headers,
            text,
        } = http::exchange(VENDOR, operation, self.timeout, request).await?;
        if status == StatusCode::UNAUTHORIZED {
            // `invalid_client`: the client id or secret is wrong; no retry will change that.
            return Err(VendorError::Credentials {
                vendor: VENDOR,
                detail: "the token endpoint refused SIGNING_CLIENT_ID/SIGNING_CLIENT_SECRET".into(),
            }
            .into());
        }
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| http::unreadable(VENDOR, "token answer", &text, &e))?;
        if let Some(kind) = answer.token_type.as_deref()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: format!("token_type {kind:?}, expected Bearer"),
            }
            .into());
        }
        let current = self.credentials();
        let stored = StoredGrant {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            issued_to: Some(current.account),
            credentials: Some(current.fingerprint),
        };
        Ok(FetchedToken {
            value: serde_json::to_string(&stored)
                .expect("two strings serialise")
                .into(),
            lifetime: answer
                .expires_in
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LIFETIME),
        })
    }

    /// `POST /auth/token`, password grant: a new access and refresh token.
    #[tracing::instrument(name = "signing.password_grant", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn password_grant(&self) -> Result<FetchedToken, SigningError> {
        let body = serde_json::json!({
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "username": self.username,
            "password": self.password.expose_secret(),
        });
        match self.grant("password_grant", body).await {
            Err(SigningError::Refused { error, .. }) if error == "invalid_grant" => {
                Err(VendorError::Credentials {
                    vendor: VENDOR,
                    detail: "the token endpoint refused SIGNING_USERNAME/SIGNING_PASSWORD".into(),
                }
                .into())
            }
            other => other,
        }
    }

    /// `POST /auth/token`, refresh grant: a new access token; the refresh token is kept when the
    /// answer brings no new one.
    #[tracing::instrument(name = "signing.refresh_grant", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn refresh_grant(
        &self,
        refresh_token: &SecretString,
    ) -> Result<FetchedToken, SigningError> {
        let body = serde_json::json!({
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "refresh_token": refresh_token.expose_secret(),
        });
        let fetched = self.grant("refresh_grant", body).await?;
        let mut grant: StoredGrant = serde_json::from_str(fetched.value.expose_secret())
            .expect("written by grant() just now");
        if grant.refresh_token.is_none() {
            grant.refresh_token = Some(refresh_token.expose_secret().to_string());
        }
        Ok(FetchedToken {
            value: serde_json::to_string(&grant)
                .expect("two strings serialise")
                .into(),
            lifetime: fetched.lifetime,
        })
    }

    /// A new token for the store: the refresh grant when `previous` holds a refresh token, else (or
    /// when the vendor refuses it) the password grant.
    pub async fn fetch_token(
        &self,
        previous: Option<SecretString>,
    ) -> Result<FetchedToken, VendorError> {
        let current = self.credentials();
        let refresh = previous.and_then(|p| {
            serde_json::from_str::<StoredGrant>(p.expose_secret())
                .ok()
                .filter(|g| !g.issued_to_another(&current))
                .and_then(|g| g.refresh_token)
                .map(SecretString::from)
        });
        if let Some(refresh) = refresh {
            match self.refresh_grant(&refresh).await {
                Ok(t) => return Ok(t),
                Err(SigningError::Vendor(v)) if v.verdict().is_retry() => return Err(v),
                Err(e) => {
                    tracing::info!(error = %e, "refresh grant refused; using the password grant");
                }
            }
        }
        match self.password_grant().await {
            Ok(t) => Ok(t),
            Err(SigningError::Vendor(v)) => Err(v),
            Err(other) => Err(VendorError::Credentials {
                vendor: VENDOR,
                detail: other.to_string(),
            }),
        }
    }

    /// `POST /auth/revoke` (RFC 7009) of `token`, authorised with the current access token.
    #[tracing::instrument(name = "signing.revoke", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn revoke(
        &self,
        tokens: &dyn TokenVault,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), SigningError> {
        let body = serde_json::json!({ "token": token.expose_secret(), "token_type_hint": hint });
        let response = self
            .authorized(tokens, "revoke", |access| {
                self.http
                    .post(self.url("/auth/revoke"))
                    .bearer_auth(access)
                    .json(&body)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(refused(status, &headers, &text))
        }
    }

    /// The configured credentials: the account (`client_id/username`) and a fingerprint of the
    /// client secret and password.
    fn credentials(&self) -> Credentials {
        let secrets = [
            self.client_id.as_str(),
            self.client_secret.expose_secret(),
            self.username.as_str(),
            self.password.expose_secret(),
        ]
        .join("\0");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secrets.as_bytes());
        Credentials {
            account: format!("{}/{}", self.client_id, self.username),
            fingerprint: digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }

    /// Revokes a grant of credentials that were rotated away; a failure is logged, since the grant
    /// is forgotten either way and expires on its own.
    async fn retire(&self, grant: &StoredGrant) {
        match self.revoke_grant(grant).await {
            Ok(()) => tracing::info!(
                issued_to = grant.issued_to.as_deref().unwrap_or_default(),
                "the signing credentials changed: the old account's grant is revoked"
            ),
            Err(e) => tracing::warn!(error = %e,
                "the signing credentials changed; the old account's grant could not be revoked"),
        }
    }

    /// `POST /auth/revoke` of a grant's refresh token (its access token when it has none), authorised
    /// with the grant's own access token: one request, whatever credentials are configured now.
    async fn revoke_grant(&self, grant: &StoredGrant) -> Result<(), SigningError> {
        let (token, hint) = match &grant.refresh_token {
            Some(refresh) => (refresh.as_str(), "refresh_token"),
            None => (grant.access_token.as_str(), "access_token"),
        };
        let body = serde_json::json!({ "token": token, "token_type_hint": hint });
        let request = self
            .http
            .post(self.url("/auth/revoke"))
            .bearer_auth(&grant.access_token)
            .json(&body);
        let answer = http::exchange(VENDOR, "revoke", self.timeout, request).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(refused(answer.status, &answer.headers, &answer.text))
        }
    }

    /// Revokes the stored grant (its refresh token, and with it, at this vendor, its access tokens),
    /// then forgets it: for retiring an account or rotating credentials by hand. `false` when there
    /// was no stored grant to revoke.
    pub async fn revoke_stored(&self, tokens: &dyn TokenVault) -> Result<bool, SigningError> {
        let Some(token) = tokens.stored(TOKEN_VENDOR).await? else {
            return Ok(false);
        };
        let grant: StoredGrant =
            serde_json::from_str(token.value.expose_secret()).map_err(|_| VendorError::Decode {
                vendor: VENDOR,
                detail: "the stored token is not a signing grant".into(),
            })?;
        self.revoke_grant(&grant).await?;
        tokens.forget(TOKEN_VENDOR, &token).await?;
        Ok(true)
    }

    /// Sends the request `build` makes with the shared access token; on a 401 the token is refreshed
    /// for everyone and the request is sent once more.
    pub(super) async fn authorized<B>(
        &self,
        tokens: &dyn TokenVault,
        operation: &'static str,
        build: B,
    ) -> Result<reqwest::Response, SigningError>
    where
        B: Fn(&str) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        loop {
            let token = tokens
                .token(TOKEN_VENDOR, |previous| self.fetch_token(previous))
                .await?;
            let grant: StoredGrant =
                serde_json::from_str(token.value.expose_secret()).map_err(|_| {
                    VendorError::Decode {
                        vendor: VENDOR,
                        detail: "the stored token is not a signing grant".into(),
                    }
                })?;
            if grant.issued_to_another(&self.credentials()) {
                // The credentials were rotated: the old account's grant is revoked, then forgotten,
                // and the next turn signs in with the new one.
                self.retire(&grant).await;
                tokens.invalidate(TOKEN_VENDOR, &token).await?;
                continue;
            }
            let started = Instant::now();
            let timeout = if operation == "submit" || operation == "download" {
                self.transfer_timeout
            } else {
                self.timeout
            };
            let response = http::send(
                VENDOR,
                operation,
                timeout,
                started,
                build(&grant.access_token),
            )
            .await?;
            let status = response.status();
            http::observe(VENDOR, operation, started, status.as_str());
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(
                    operation,
                    "access token refused; refreshing it and trying once more"
                );
                tokens.invalidate(TOKEN_VENDOR, &token).await?;
                refreshed = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(VendorError::Credentials {
                    vendor: VENDOR,
                    detail: format!("{operation}: a freshly issued access token was refused"),
                }
                .into());
            }
            return Ok(response);
        }
    }
}
