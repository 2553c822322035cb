//! What every vendor client shares: the HTTP client, transport errors, and which of them retry.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::contract::errors::{ErrorKind, Failure, Verdict};

/// A vendor call that did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// No connection could be made, or it broke mid-request.
    #[error("{vendor}: connection failed: {detail}")]
    Connect {
        /// The vendor.
        vendor: &'static str,
        /// The transport's words.
        detail: String,
    },
    /// No answer within the deadline.
    #[error("{vendor}: no answer within {timeout:?}")]
    Timeout {
        /// The vendor.
        vendor: &'static str,
        /// The deadline.
        timeout: Duration,
    },
    /// An HTTP status with no answer the vendor's contract defines.
    #[error("{vendor}: HTTP {status}{}", body_hint(.body))]
    Status {
        /// The vendor.
        vendor: &'static str,
        /// The HTTP status.
        status: u16,
        /// The vendor's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// The start of the body, for the operator.
        body: String,
    },
    /// The vendor refused pasarela's credentials in a way no retry will change.
    #[error("{vendor}: {detail}")]
    Credentials {
        /// The vendor.
        vendor: &'static str,
        /// What the vendor's answer means, for the operator.
        detail: String,
    },
    /// An answer that arrived whole but says nothing pasarela can act on. It is not retried: asking
    /// again would repeat whatever the first question did at the vendor.
    #[error("{vendor}: unrecognised answer: {detail}")]
    Unrecognised {
        /// The vendor.
        vendor: &'static str,
        /// Why it could not be read, and its shape (keys and types, never values).
        detail: String,
    },
    /// A body that is not the documented shape.
    #[error("{vendor}: unreadable answer: {detail}")]
    Decode {
        /// The vendor.
        vendor: &'static str,
        /// What did not parse.
        detail: String,
    },
}

fn body_hint(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl VendorError {
    /// What this failure means for the message that caused it.
    pub fn verdict(&self) -> Verdict {
        let message = self.to_string();
        match self {
            VendorError::Connect { .. } | VendorError::Decode { .. } => {
                Verdict::retry(Failure::new(ErrorKind::Vendor, message))
            }
            VendorError::Timeout { .. } => {
                Verdict::retry(Failure::new(ErrorKind::Timeout, message))
            }
            VendorError::Credentials { .. } => {
                Verdict::GiveUp(Failure::new(ErrorKind::Auth, message))
            }
            VendorError::Unrecognised { .. } => {
                Verdict::GiveUp(Failure::new(ErrorKind::Vendor, message))
            }
            VendorError::Status {
                status,
                retry_after,
                ..
            } => verdict_of_status(*status, *retry_after, message),
        }
    }
}

/// The one table from an HTTP status that carries no documented answer to a verdict: 429, 408 and
/// 5xx may pass (not before the vendor's `Retry-After`), 401 and 403 are pasarela's credentials, and
/// anything else will not pass however often it is sent.
pub fn verdict_of_status(status: u16, retry_after: Option<Duration>, message: String) -> Verdict {
    let retry = |kind| Verdict::Retry {
        failure: Failure::new(kind, message.clone()),
        after: retry_after,
    };
    match status {
        429 => retry(ErrorKind::RateLimited),
        408 => retry(ErrorKind::Timeout),
        500..=599 => retry(ErrorKind::Vendor),
        401 | 403 => Verdict::GiveUp(Failure::new(ErrorKind::Auth, message)),
        _ => Verdict::GiveUp(Failure::new(ErrorKind::Vendor, message)),
    }
}

/// Builds the one HTTP client a vendor module keeps, with its deadline set.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("pasarela/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with these settings always builds")
}

/// Maps a transport failure of `vendor`.
pub fn transport_error(vendor: &'static str, timeout: Duration, e: &reqwest::Error) -> VendorError {
    if e.is_timeout() {
        VendorError::Timeout { vendor, timeout }
    } else {
        // The URL is a setting, not a secret, but credentials never go in it; keep the source's words.
        VendorError::Connect {
            vendor,
            detail: e.without_url_ref().to_string(),
        }
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<vendor url>");
        }
        text
    }
}

/// Reads `Retry-After`, in seconds or as an HTTP date (a date in the past is no wait at all).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // An HTTP date (IMF-fixdate, e.g. `Wed, 21 Oct 2026 07:28:00 GMT`) is an RFC 2822 date.
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    Some(
        (at.to_utc() - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// An answer that is not the documented shape: what the parser said, without the values it may quote,
/// and the answer's shape (keys and types, never values) for the operator.
pub fn unreadable(
    vendor: &'static str,
    what: &str,
    text: &str,
    error: &serde_json::Error,
) -> VendorError {
    VendorError::Decode {
        vendor,
        detail: format!(
            "{what}: {}; the answer's shape: {}",
            crate::vendors::shape::parse_error(error),
            crate::vendors::shape::shape_of(text)
        ),
    }
}

/// The first 200 characters of a body, for error messages.
pub fn snippet(body: &str) -> String {
    body.chars().take(200).collect()
}

/// A status that carries no documented answer.
pub fn status_error(
    vendor: &'static str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> VendorError {
    VendorError::Status {
        vendor,
        status: status.as_u16(),
        retry_after: retry_after(headers),
        body: snippet(body),
    }
}

/// An answer read whole: its status, headers and text.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers (for `Retry-After`).
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// An answer with no headers, as a test or a fuzzer builds one; `None` for a status HTTP has not.
    pub fn of(status: u16, text: &str) -> Option<Self> {
        Some(Self {
            status: StatusCode::from_u16(status).ok()?,
            headers: Default::default(),
            text: text.to_string(),
        })
    }
}

/// Sends `request` (with the trace headers) and reads the whole answer, recording its status on the
/// current span; a transport failure is observed under `operation`.
pub async fn exchange(
    vendor: &'static str,
    operation: &'static str,
    timeout: Duration,
    request: reqwest::RequestBuilder,
) -> Result<Answer, VendorError> {
    let started = Instant::now();
    let response = send(vendor, operation, timeout, started, request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .map_err(|e| transport_error(vendor, timeout, &e))?;
    observe(vendor, operation, started, status.as_str());
    Ok(Answer {
        status,
        headers,
        text,
    })
}

/// Sends `request` with the trace headers, recording the request and its answer's status on the
/// current span (a 5xx, a timeout or a broken connection marks it an error).
pub async fn send(
    vendor: &'static str,
    operation: &'static str,
    timeout: Duration,
    started: Instant,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, VendorError> {
    let transport = |e: reqwest::Error| {
        crate::telemetry::record_error(if e.is_timeout() {
            "timeout"
        } else {
            "transport"
        });
        observe(vendor, operation, started, "transport");
        transport_error(vendor, timeout, &e)
    };
    let (client, request) = request
        .headers(crate::telemetry::http_trace_headers())
        .build_split();
    let request = request.map_err(transport)?;
    crate::telemetry::record_http_request(request.method().as_str(), request.url());
    let response = client.execute(request).await.map_err(transport)?;
    crate::telemetry::record_http_response(response.status().as_u16());
    Ok(response)
}

/// A vendor reached with JSON bodies and HTTP Basic credentials (DANAConnect, Aldeamo): one client,
/// built once, and one way of telling a documented answer from a failure.
#[derive(Debug, Clone)]
pub struct BasicJsonApi {
    http: reqwest::Client,
    vendor: &'static str,
    login: String,
    password: SecretString,
    timeout: Duration,
}

impl BasicJsonApi {
    /// An API of `vendor` that logs in as `login`, each call bounded by `timeout`.
    pub fn new(
        vendor: &'static str,
        login: String,
        password: SecretString,
        timeout: Duration,
    ) -> Self {
        Self {
            http: client(timeout),
            vendor,
            login,
            password,
            timeout,
        }
    }

    /// POSTs `body` to `url` and reads the whole answer, whatever its status, for an answer whose shape
    /// the vendor leaves open.
    pub async fn exchange<B: serde::Serialize>(
        &self,
        operation: &'static str,
        url: &reqwest::Url,
        body: &B,
    ) -> Result<Answer, VendorError> {
        let request = self
            .http
            .post(url.clone())
            .basic_auth(&self.login, Some(self.password.expose_secret()))
            .json(body);
        exchange(self.vendor, operation, self.timeout, request).await
    }

    /// POSTs `body` to `url`. A body of the documented shape is an answer whatever the HTTP status
    /// (vendors put their codes in the body); anything else is judged by its status.
    pub async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &reqwest::Url,
        body: &B,
    ) -> Result<R, VendorError> {
        let vendor = self.vendor;
        let Answer {
            status,
            headers,
            text,
        } = self.exchange(operation, url, body).await?;
        match serde_json::from_str::<R>(&text) {
            Ok(parsed) => Ok(parsed),
            Err(e) if status.is_success() => Err(unreadable(vendor, operation, &text, &e)),
            Err(_) => Err(status_error(vendor, status, &headers, &text)),
        }
    }
}

/// Records a vendor call's latency and outcome.
pub fn observe(vendor: &'static str, operation: &'static str, started: Instant, outcome: &str) {
    metrics::histogram!(
        "pasarela_vendor_request_seconds",
        "vendor" => vendor, "operation" => operation, "outcome" => outcome.to_string()
    )
    .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> VendorError {
        VendorError::Status {
            vendor: "v",
            status: code,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
        }
    }

    fn kind_and_after(v: &Verdict) -> (ErrorKind, bool, Option<Duration>) {
        match v {
            Verdict::Retry { failure, after } => (failure.kind, true, *after),
            Verdict::GiveUp(failure) => (failure.kind, false, None),
        }
    }

    #[test]
    fn every_status_has_one_verdict() {
        let secs = |s| Some(Duration::from_secs(s));
        let table = [
            (429, secs(7), (ErrorKind::RateLimited, true, secs(7))),
            (408, secs(2), (ErrorKind::Timeout, true, secs(2))),
            (500, None, (ErrorKind::Vendor, true, None)),
            (503, secs(30), (ErrorKind::Vendor, true, secs(30))),
            (401, None, (ErrorKind::Auth, false, None)),
            (403, secs(9), (ErrorKind::Auth, false, None)),
            (404, None, (ErrorKind::Vendor, false, None)),
            (400, secs(5), (ErrorKind::Vendor, false, None)),
        ];
        for (code, after, expected) in table {
            let verdict = status(code, after.map(|d: Duration| d.as_secs())).verdict();
            assert_eq!(kind_and_after(&verdict), expected, "HTTP {code}");
            assert!(verdict.failure().message.contains(&code.to_string()));
        }
        let timeout = VendorError::Timeout {
            vendor: "v",
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            kind_and_after(&timeout.verdict()),
            (ErrorKind::Timeout, true, None)
        );
        let refused = VendorError::Credentials {
            vendor: "v",
            detail: "user not registered".into(),
        };
        assert_eq!(
            kind_and_after(&refused.verdict()),
            (ErrorKind::Auth, false, None)
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        let soon = chrono::Utc::now() + chrono::Duration::seconds(90);
        let date = soon.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        headers.insert(reqwest::header::RETRY_AFTER, date.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(85) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
