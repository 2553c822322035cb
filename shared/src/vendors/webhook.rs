//! Client webhooks: Standard Webhooks signatures (docs/CONTRACT.md, "Client webhooks") and the guard that keeps a producer's
//! callback URL from pointing pasarela at its own network.
//!
//! Signing is the `standardwebhooks` crate's, the reference implementation of the specification, so a
//! receiver's reference verification accepts what pasarela sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::contract::env::ConfigError;
use secrecy::{ExposeSecret, SecretString};

/// The three Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the same on every attempt of one message.
    pub id: String,
    /// `webhook-timestamp`: seconds since the epoch, of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub signature: String,
}

/// Signs client webhooks with `PASARELA_WEBHOOK_SECRET` (`whsec_` + Base64).
pub struct WebhookSigner(standardwebhooks::Webhook);

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSigner([REDACTED])")
    }
}

impl WebhookSigner {
    /// A signer for `secret`; the error never quotes it.
    pub fn new(secret: &SecretString) -> Result<Self, ConfigError> {
        standardwebhooks::Webhook::new(secret.expose_secret())
            .map(Self)
            .map_err(|_| {
                ConfigError::new(
                    "PASARELA_WEBHOOK_SECRET",
                    "must be whsec_ followed by Base64",
                )
            })
    }

    /// The headers for delivering `body` as message `id` at `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
        let signature = self
            .0
            .sign(id, timestamp, body)
            .expect("signing an in-memory body does not fail");
        SignedHeaders {
            id: id.to_string(),
            timestamp,
            signature,
        }
    }
}

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not an absolute http(s) URL with a host.
    #[error("callback_url: {0}")]
    Malformed(String),
    /// The host could not be resolved.
    #[error("callback_url: {host} does not resolve")]
    Unresolvable {
        /// The host.
        host: String,
    },
    /// The host is, or resolves to, an address inside the network pasarela runs in.
    #[error(
        "callback_url: {host} is a {class} address ({addr}); list the host in PASARELA_WEBHOOK_ALLOW_HOSTS to allow it"
    )]
    Private {
        /// The host.
        host: String,
        /// The address it resolved to.
        addr: IpAddr,
        /// What kind of address it is.
        class: &'static str,
    },
}

/// What an address is, when it is not a public one: loopback, private, link-local (cloud metadata
/// lives there), and the rest a server-side request must never reach. An IPv6 address that carries an
/// IPv4 one (mapped, IPv4-compatible, NAT64, 6to4) is judged by the address it carries.
pub fn internal_class(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = carried_v4(v6) {
                return v4_class(v4);
            }
            let [first, second, ..] = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if first == 0x2001 && second == 0x0db8 {
                Some("documentation")
            } else if first == 0x0100 && v6.segments()[1..4] == [0, 0, 0] {
                Some("discard-only")
            } else if first == 0x0064 && second == 0xff9b {
                // NAT64 for local use (64:ff9b:1::/48): the translator is someone's own network.
                Some("NAT64 (local use)")
            } else {
                None
            }
        }
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), the well-known NAT64 prefix (`64:ff9b::/96`) and 6to4 (`2002:aabb:ccdd::/48`).
fn carried_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

fn v4_class(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if v4.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if a == 192 && b == 0 && c == 0 {
        Some("protocol assignments")
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        Some("documentation")
    } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
        Some("reserved, multicast or broadcast")
    } else {
        None
    }
}

/// Resolves a callback URL and refuses it when any address it resolves to is internal, unless its host
/// is listed in `allow_hosts` (`PASARELA_WEBHOOK_ALLOW_HOSTS`). Returns the addresses to connect to, so
/// that the delivery uses what was checked (no second lookup an attacker could answer differently).
pub async fn checked_destination(
    url: &url::Url,
    allow_hosts: &[String],
) -> Result<Vec<SocketAddr>, DestinationError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Malformed(format!(
            "only http and https, got {}",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| DestinationError::Malformed("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| DestinationError::Malformed("no port".into()))?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| DestinationError::Unresolvable { host: host.clone() })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(DestinationError::Unresolvable { host });
    }
    let allowed = allow_hosts
        .iter()
        .any(|h| h.trim().eq_ignore_ascii_case(&host));
    if !allowed
        && let Some((addr, class)) = addrs
            .iter()
            .find_map(|a| internal_class(a.ip()).map(|c| (a.ip(), c)))
    {
        return Err(DestinationError::Private { host, addr, class });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, hole 7: every range a server-side request must not reach is refused, including the
    /// IPv6 forms that carry an internal IPv4 address.
    #[test]
    fn the_ssrf_guard_refuses_every_internal_range() {
        for internal in [
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "fec0::1",
            "2001:db8::1",
            "100::1",
            "ff02::1",
            "100.64.0.1",
            "100.127.255.254",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
        ] {
            let addr: IpAddr = internal.parse().unwrap();
            assert!(internal_class(addr).is_some(), "{internal} must be refused");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "198.20.0.1",
            "100.128.0.1",
        ] {
            let addr: IpAddr = public.parse().unwrap();
            assert_eq!(internal_class(addr), None, "{public} is public");
        }
    }

    #[test]
    fn signatures_match_the_specifications_example_and_verify() {
        // The example of the Standard Webhooks specification (and Svix's documentation).
        let signer = WebhookSigner::new(&SecretString::from(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ))
        .unwrap();
        let h = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            h.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(!format!("{signer:?}").contains("MfKQ9r8"));
        assert!(WebhookSigner::new(&SecretString::from("whsec_***")).is_err());

        // The reference verification accepts a fresh signature and refuses a changed body.
        let now = chrono::Utc::now().timestamp();
        let body = br#"{"type":"document.signed"}"#;
        let h = signer.sign("msg_1", now, body);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("webhook-id", h.id.parse().unwrap());
        headers.insert(
            "webhook-timestamp",
            h.timestamp.to_string().parse().unwrap(),
        );
        headers.insert("webhook-signature", h.signature.parse().unwrap());
        let verifier =
            standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(verifier.verify(body, &headers).is_ok());
        assert!(verifier.verify(b"{}", &headers).is_err());
    }

    #[test]
    fn internal_addresses_are_classified() {
        for ip in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(internal_class(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(internal_class(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_callbacks_need_allow_listing() {
        let allow = vec!["127.0.0.1".to_string()];
        let ok = url::Url::parse("http://127.0.0.1:9/hook").unwrap();
        assert_eq!(checked_destination(&ok, &allow).await.unwrap().len(), 1);
        // Another loopback address, not on the list.
        let other = url::Url::parse("http://127.0.0.2:9/hook").unwrap();
        let err = checked_destination(&other, &allow).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(
            err.to_string().contains("PASARELA_WEBHOOK_ALLOW_HOSTS"),
            "{err}"
        );
        // A name that resolves to loopback is refused too.
        let named = url::Url::parse("http://localhost:9/hook").unwrap();
        assert!(checked_destination(&named, &[]).await.is_err());
        let metadata = url::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(matches!(
            checked_destination(&metadata, &[]).await,
            Err(DestinationError::Private { .. })
        ));
        let ftp = url::Url::parse("ftp://127.0.0.1/x").unwrap();
        assert!(matches!(
            checked_destination(&ftp, &allow).await,
            Err(DestinationError::Malformed(_))
        ));
    }
}
