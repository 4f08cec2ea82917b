//! The master key in Secrets Manager and the per-purpose keys derived from it.
//!
//! Secrets that must stay usable (cursor signing, webhook signing, card fingerprints)
//! are never stored: each is `HMAC-SHA256(master, "aloft:" + purpose)`, recomputed on
//! demand. Rotating the master key rotates them all.
//!
//! The secret itself is read on first use, not at cold start: most requests (a create,
//! a heartbeat, the first page of a list) never need it, and an init that waits on
//! Secrets Manager is an init every cold start pays. State built at cold start holds a
//! [`LazyKey`] (derived on its first `get`), never a [`DerivedKey`] derived in `main`.

use std::sync::{Arc, OnceLock};

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

/// The master key: known bytes, or a Secrets Manager secret read on first use.
///
/// Built by [`MasterKey::from_env`] at cold start, it holds only the secret's id: the
/// secret is read the first time a key is derived or a cursor is signed or checked, once
/// per process, so a route that never needs a key never calls Secrets Manager.
#[derive(Clone)]
pub struct MasterKey(Arc<dyn Material>);

/// Behind a `Send + Sync` trait object, like [`crate::cursor::CursorCodec`]'s state:
/// `main`'s future holds the key, and rustc lays that future out through every field.
trait Material: Send + Sync {
    fn inner(&self) -> &Inner;
}

impl Material for Inner {
    fn inner(&self) -> &Inner {
        self
    }
}

struct Inner {
    material: OnceLock<Vec<u8>>,
    /// Where the material comes from when it is not known yet.
    source: Option<Source>,
}

struct Source {
    secret_id: String,
    /// Behind a trait object: holding `SdkConfig` itself makes every future that holds a
    /// `MasterKey` (a handler's state) prove `Send`/`Sync` through all of its fields, past
    /// rustc's query depth limit in the largest binaries.
    clients: Box<dyn SecretsClients>,
}

/// How a read gets its Secrets Manager client.
trait SecretsClients: Send + Sync {
    /// The function's own client (its connection pool, its call timing).
    fn shared(&self) -> aws_sdk_secretsmanager::Client;
    /// A client with connections of its own, for a read on a short-lived runtime: its
    /// connections must not land in the pool the function's clients share.
    fn isolated(&self) -> aws_sdk_secretsmanager::Client;
}

impl SecretsClients for crate::aws::SdkConfig {
    fn shared(&self) -> aws_sdk_secretsmanager::Client {
        crate::aws::secrets_manager(self)
    }

    fn isolated(&self) -> aws_sdk_secretsmanager::Client {
        let mut conf = aws_sdk_secretsmanager::config::Builder::from(self);
        conf.set_http_client(Some(crate::trust_roots::https_client()));
        aws_sdk_secretsmanager::Client::from_conf(conf.build())
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Reads the secret now.
    pub async fn load(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<Self, MasterKeyError> {
        Ok(Self::from_bytes(fetch(client, secret_id).await?))
    }

    /// The key named by `MASTER_KEY_SECRET_ID`, read on first use (once per cold start).
    /// A missing variable is still an init error; an unreadable secret is an error of the
    /// first request that needs the key.
    pub async fn from_env(sdk: &crate::aws::SdkConfig) -> Result<Self, lambda_http::Error> {
        let secret_id = crate::config::required("MASTER_KEY_SECRET_ID")?;
        Ok(Self::lazy(sdk, secret_id))
    }

    /// The key in `secret_id`, read on first use.
    pub fn lazy(sdk: &crate::aws::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self(Arc::new(Inner {
            material: OnceLock::new(),
            source: Some(Source {
                secret_id: secret_id.into(),
                clients: Box::new(sdk.clone()),
            }),
        }))
    }

    /// For tests and tools that hold the key material already.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        let material = OnceLock::new();
        let _ = material.set(bytes.into());
        Self(Arc::new(Inner {
            material,
            source: None,
        }))
    }

    /// Whether the secret has been read (or was given).
    pub fn is_loaded(&self) -> bool {
        self.0.inner().material.get().is_some()
    }

    /// The key for `purpose`, reading the secret first if it has not been read, on the
    /// caller's runtime. Prefer this to [`MasterKey::derive`] in async code (`main`).
    pub async fn try_derive(&self, purpose: &str) -> Result<DerivedKey, MasterKeyError> {
        if let Some(m) = self.0.inner().material.get() {
            return Ok(derive(m, purpose));
        }
        let source = self.source()?;
        let bytes = fetch(&source.clients.shared(), &source.secret_id).await?;
        Ok(derive(
            self.0.inner().material.get_or_init(|| bytes),
            purpose,
        ))
    }

    /// The key for `purpose`. If the secret has not been read yet, reads it now, blocking
    /// this thread for that one call (see [`MasterKey::try_derive_blocking`]).
    ///
    /// # Panics
    /// If the secret cannot be read. Tests and tools with known bytes only: state built at
    /// cold start holds a [`LazyKey`], so init reads no secret.
    pub fn derive(&self, purpose: &str) -> DerivedKey {
        match self.try_derive_blocking(purpose) {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    /// The key for `purpose` from synchronous code. The first call reads the secret on a
    /// helper thread with its own runtime and connection, so it works on every tokio
    /// runtime flavour (and outside one); it blocks the calling thread for that one
    /// Secrets Manager call, once per process.
    pub fn try_derive_blocking(&self, purpose: &str) -> Result<DerivedKey, MasterKeyError> {
        Ok(derive(self.material_blocking()?, purpose))
    }

    fn source(&self) -> Result<&Source, MasterKeyError> {
        // Without a source the material was set at construction.
        self.0
            .inner()
            .source
            .as_ref()
            .ok_or_else(|| MasterKeyError::Unusable("<given bytes>".into()))
    }

    fn material_blocking(&self) -> Result<&[u8], MasterKeyError> {
        if let Some(m) = self.0.inner().material.get() {
            return Ok(m);
        }
        let source = self.source()?;
        let bytes = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| MasterKeyError::Fetch {
                        secret_id: source.secret_id.clone(),
                        source: Box::new(e),
                    })?;
                rt.block_on(fetch(&source.clients.isolated(), &source.secret_id))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(MasterKeyError::Unusable(format!(
                    "{} (the thread reading it panicked)",
                    source.secret_id
                )))
            })
        })?;
        Ok(self.0.inner().material.get_or_init(|| bytes))
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Vec<u8>, MasterKeyError> {
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
        Some(s) if s.len() >= 32 => Ok(s.as_bytes().to_vec()),
        _ => Err(MasterKeyError::Unusable(secret_id.to_owned())),
    }
}

fn derive(master: &[u8], purpose: &str) -> DerivedKey {
    DerivedKey(mac(master, format!("aloft:{purpose}").as_bytes()))
}

/// The key for one purpose, derived the first time it is needed.
///
/// What handler state holds instead of a [`DerivedKey`], so building that state at cold
/// start reads nothing: the first [`LazyKey::get`] reads the master key's secret (unless
/// something read it already) on the caller's runtime. Concurrent first uses wait for
/// one read. A failed read is the error of that call; the next call tries again.
#[derive(Clone)]
pub struct LazyKey(Arc<LazyInner>);

struct LazyInner {
    master: MasterKey,
    purpose: String,
    key: tokio::sync::OnceCell<DerivedKey>,
}

impl LazyKey {
    /// The key for `purpose` from `master`, derived on first use.
    pub fn new(master: &MasterKey, purpose: impl Into<String>) -> Self {
        Self(Arc::new(LazyInner {
            master: master.clone(),
            purpose: purpose.into(),
            key: tokio::sync::OnceCell::new(),
        }))
    }

    /// The key, reading the master key's secret first if nothing has read it yet.
    pub async fn get(&self) -> Result<&DerivedKey, MasterKeyError> {
        let inner = &*self.0;
        inner
            .key
            .get_or_try_init(|| inner.master.try_derive(&inner.purpose))
            .await
    }

    /// Whether the key has been derived.
    pub fn is_loaded(&self) -> bool {
        self.0.key.initialized()
    }
}

/// A key known already (tests, tools): `get` never reads anything.
impl From<DerivedKey> for LazyKey {
    fn from(key: DerivedKey) -> Self {
        Self(Arc::new(LazyInner {
            master: MasterKey::from_bytes(Vec::new()),
            purpose: String::new(),
            key: tokio::sync::OnceCell::new_with(Some(key)),
        }))
    }
}

impl std::fmt::Debug for LazyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyKey({:?}, <redacted>)", self.0.purpose)
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
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// A Secrets Manager that answers every call with `secret` and counts the calls.
    async fn secrets_manager(secret: &'static str) -> (crate::aws::SdkConfig, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    [("content-type", "application/x-amz-json-1.1")],
                    serde_json::json!({"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:m",
                        "Name": "m", "SecretString": secret, "VersionId": "v1"})
                    .to_string(),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sdk(&endpoint), calls)
    }

    fn sdk(endpoint: &str) -> crate::aws::SdkConfig {
        use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
        crate::aws::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "k", "s", None, None, "test",
            )))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(crate::trust_roots::https_client())
            .build()
    }

    // Multi-threaded: the fake answers on this runtime while a blocking first use waits.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_secret_is_read_once_on_first_use_and_never_before() {
        let (sdk, calls) = secrets_manager("0123456789abcdef0123456789abcdef").await;
        let master = MasterKey::lazy(&sdk, "m");
        let cursors = crate::cursor::CursorCodec::new(&master);
        // Building the codec and a first page (no cursor) need no key.
        assert_eq!(cursors.start_key("s", None), Ok(None));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert!(!master.is_loaded());

        let given = MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        assert_eq!(
            master.derive("cursor").as_bytes(),
            given.derive("cursor").as_bytes()
        );
        assert_eq!(
            master.try_derive("webhook").await.unwrap().as_bytes(),
            given.derive("webhook").as_bytes()
        );
        let cursor = cursors.encode("s", &Default::default());
        assert!(cursors.decode("s", &cursor).is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A fake Secrets Manager on a thread and runtime of its own, for tests whose runtime
    /// has one thread that a blocking first use holds while the secret is read.
    fn secrets_manager_elsewhere(
        secret: &'static str,
    ) -> (crate::aws::SdkConfig, Arc<AtomicUsize>) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    tx.send(secrets_manager(secret).await).unwrap();
                    std::future::pending::<()>().await
                })
        });
        rx.recv().unwrap()
    }

    // The Lambda binaries' flavour: the first use from synchronous code (a cursor signed
    // in a handler) reads on a helper thread, never on the blocked runtime thread.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocking_first_use_works_on_a_current_thread_runtime() {
        let (sdk, calls) = secrets_manager_elsewhere("0123456789abcdef0123456789abcdef");
        let master = MasterKey::lazy(&sdk, "m");
        let cursors = crate::cursor::CursorCodec::new(&master);
        let cursor = cursors.encode("s", &Default::default());
        assert!(cursors.decode("s", &cursor).is_ok());
        let given = MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        assert_eq!(
            master.derive("webhook").as_bytes(),
            given.derive("webhook").as_bytes()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lazy_key_reads_nothing_until_first_use_then_once() {
        let (sdk, calls) = secrets_manager_elsewhere("0123456789abcdef0123456789abcdef");
        let master = MasterKey::lazy(&sdk, "m");
        let a = LazyKey::new(&master, "card-fingerprint");
        let b = LazyKey::new(&master, "idempotency");
        assert!(!a.is_loaded());
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // Concurrent first uses of one key wait for one read.
        let (x, y) = tokio::join!(a.get(), a.get());
        let given = MasterKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        let want = given.derive("card-fingerprint");
        assert_eq!(x.unwrap().as_bytes(), want.as_bytes());
        assert_eq!(y.unwrap().as_bytes(), want.as_bytes());
        // Another purpose derives from the material already read.
        assert_eq!(
            b.get().await.unwrap().as_bytes(),
            given.derive("idempotency").as_bytes()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let known = LazyKey::from(want.clone());
        assert!(known.is_loaded());
        assert_eq!(known.get().await.unwrap().as_bytes(), want.as_bytes());
        assert_eq!(format!("{known:?}"), "LazyKey(\"\", <redacted>)");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreadable_secret_fails_only_what_needs_the_key() {
        // Nothing listens on port 9: every read fails fast.
        let master = MasterKey::lazy(&sdk("http://127.0.0.1:9"), "m");
        let cursors = crate::cursor::CursorCodec::new(&master);
        assert_eq!(cursors.start_key("s", None), Ok(None));
        let signed = crate::cursor::CursorCodec::new(&MasterKey::from_bytes(vec![1; 32]))
            .encode("s", &Default::default());
        assert_eq!(
            cursors.start_key("s", Some(&signed)),
            Err(crate::cursor::CursorError::KeyUnavailable)
        );
        assert!(master.try_derive("x").await.is_err());
        assert!(master.try_derive_blocking("x").is_err());
        assert!(!master.is_loaded());
        let key = LazyKey::new(&master, "x");
        assert!(key.get().await.is_err());
        assert!(key.get().await.is_err());
        assert!(!key.is_loaded());
    }
}
