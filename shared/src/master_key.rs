//! The master key in Secrets Manager and the per-purpose keys derived from it.
//!
//! Secrets that must stay usable (cursor signing, webhook signing, card fingerprints)
//! are never stored: each is `HMAC-SHA256(master, "aloft:" + purpose)`, recomputed on
//! demand. Rotating the master key rotates them all.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("could not read master key secret {secret_id}: {source}")]
    Fetch {
        secret_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("master key secret {0} has no usable SecretString (need at least 32 characters)")]
    Unusable(String),
}

#[derive(Clone)]
pub struct MasterKey(Vec<u8>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub async fn load(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<Self, MasterKeyError> {
        let out = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| MasterKeyError::Fetch {
                secret_id: secret_id.to_owned(),
                source: Box::new(std::io::Error::other(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                )),
            })?;
        match out.secret_string() {
            Some(s) if s.len() >= 32 => Ok(Self(s.as_bytes().to_vec())),
            _ => Err(MasterKeyError::Unusable(secret_id.to_owned())),
        }
    }

    /// The key named by `MASTER_KEY_SECRET_ID`, fetched once per cold start.
    pub async fn from_env(sdk: &crate::aws::SdkConfig) -> Result<Self, lambda_http::Error> {
        let secret_id = crate::config::required("MASTER_KEY_SECRET_ID")?;
        Ok(Self::load(&crate::aws::secrets_manager(sdk), &secret_id).await?)
    }

    /// For tests and tools that hold the key material already.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn derive(&self, purpose: &str) -> DerivedKey {
        DerivedKey(mac(&self.0, format!("aloft:{purpose}").as_bytes()))
    }
}

/// A 256-bit key for one purpose.
#[derive(Clone)]
pub struct DerivedKey([u8; 32]);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

impl DerivedKey {
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        mac(&self.0, data)
    }

    /// Constant-time comparison of a presented tag.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = keyed(&self.0);
        m.update(data);
        m.verify_slice(tag).is_ok()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length; the Result exists only for other MACs.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = keyed(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_different_keys_and_verify_their_own_tags() {
        let master = MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        let a = master.derive("cursor");
        let b = master.derive("webhook");
        assert_ne!(a.as_bytes(), b.as_bytes());
        let tag = a.sign(b"data");
        assert!(a.verify(b"data", &tag));
        assert!(!b.verify(b"data", &tag));
        assert!(!a.verify(b"datA", &tag));
        assert_eq!(format!("{master:?}"), "MasterKey(<redacted>)");
    }
}
