//! Webhook signing secrets and Standard Webhooks signatures, free of I/O.
//!
//! A subscription's secret is never stored: it is
//! `HMAC-SHA256(webhook key, "<subscription id>:<generation>")`, where the webhook key
//! is derived from the master key in Secrets Manager. Rotation bumps the generation;
//! the previous one keeps signing until its expiry. The table holds only the
//! generation numbers, so a leaked table (or backup) leaks no secret, and signing costs
//! no KMS or Secrets Manager call per delivery.

use std::fmt;

use aloft_shared::master_key::DerivedKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The purpose the webhook key is derived for (`MasterKey::derive`).
pub const KEY_PURPOSE: &str = "webhook-signing";
pub const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// A signing secret: raw key bytes. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// The secret of `subscription_id` at `generation`.
    pub fn derive(key: &DerivedKey, subscription_id: &str, generation: u32) -> Self {
        Self(
            key.sign(format!("{subscription_id}:{generation}").as_bytes())
                .to_vec(),
        )
    }

    /// A `whsec_<base64>` secret as receivers hold it (the prefix is optional, as in the
    /// reference libraries).
    pub fn parse(s: &str) -> Option<Self> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        STANDARD
            .decode(b64)
            .ok()
            .filter(|b| !b.is_empty())
            .map(Self)
    }

    /// `whsec_` + base64, the form shown to the user once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; the error exists only for other MACs.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    /// `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut m = self.mac();
        m.update(format!("{id}.{timestamp}.").as_bytes());
        m.update(body);
        format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one `v1,` signature per secret, space-separated
/// (during a rotation's overlap the old secret signs too, so receivers holding either
/// one verify).
pub fn signature_header(
    secrets: &[SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a `webhook-signature` header the way Standard Webhooks receivers do: any
/// one `v1` signature matching is enough (constant-time comparison). For tests and
/// tools; the platform itself only signs.
pub fn verify(secret: &SigningSecret, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    header.split_whitespace().any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            return false;
        };
        let mut m = secret.mac();
        m.update(format!("{id}.{timestamp}.").as_bytes());
        m.update(body);
        m.verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_shared::master_key::MasterKey;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn reproduces_the_standard_webhooks_test_vector() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(secret.expose(), SPEC_SECRET);
        assert!(verify(
            &secret,
            "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY
        ));
        assert!(!verify(
            &secret,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            SPEC_ID,
            SPEC_TS + 1,
            SPEC_BODY
        ));
    }

    #[test]
    fn derived_secrets_differ_by_subscription_and_generation_and_are_stable() {
        let key =
            MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).derive(KEY_PURPOSE);
        let a1 = SigningSecret::derive(&key, "a", 1);
        assert_eq!(a1, SigningSecret::derive(&key, "a", 1));
        assert_ne!(a1, SigningSecret::derive(&key, "a", 2));
        assert_ne!(a1, SigningSecret::derive(&key, "b", 1));
        let shown = a1.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&shown), Some(a1.clone()));
        assert!(!format!("{a1:?}").contains(&shown[6..]));
    }

    #[test]
    fn a_header_with_two_secrets_verifies_with_either() {
        let key =
            MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).derive(KEY_PURPOSE);
        let (old, new) = (
            SigningSecret::derive(&key, "s", 1),
            SigningSecret::derive(&key, "s", 2),
        );
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 10, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&new, &header, "msg_1", 10, b"{}"));
        assert!(verify(&old, &header, "msg_1", 10, b"{}"));
        let other = SigningSecret::derive(&key, "s", 3);
        assert!(!verify(&other, &header, "msg_1", 10, b"{}"));
        assert!(!verify(&new, &header, "msg_1", 10, b"{ }"));
    }
}
