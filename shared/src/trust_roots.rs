//! The HTTPS client every AWS SDK client shares, and the root certificates it and the
//! capabilities' own HTTP clients trust.
//!
//! The SDK's default client loads the platform's roots through rustls-native-certs, which
//! reads the system's CA bundle *and* every file of the certificate directories beside it
//! (`/etc/ssl/certs`, `/etc/pki/tls/certs`): on Debian and Ubuntu that is about 150 hashed
//! copies of the bundle's own certificates, opened, statted and parsed at every cold start
//! (about half of users-api's init CPU on such a machine, issue 13). OpenSSL, whose layout
//! those directories follow, never reads them eagerly: it looks a certificate up there by
//! hash when it needs one. So this client trusts the bundle alone: the same roots, read
//! once. Nothing changes where the bundle cannot be found or read cleanly, or where an
//! operator names roots with `SSL_CERT_FILE` or `SSL_CERT_DIR`: the SDK's own loading
//! then runs as before.

use std::sync::OnceLock;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where distributions keep the one-file CA bundle, most likely first: Amazon Linux 2023
/// (what Lambda's `provided.al2023` runs), RHEL and Fedora; Debian, Ubuntu and Alpine;
/// SUSE. The first of openssl-probe's candidates, which rustls-native-certs also reads.
const BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// The client the SDK's `default-https-client` builds (hyper 1.x, rustls, here with ring,
/// `HTTPS_PROXY`/`NO_PROXY` honoured, per-client connect settings and sleep), trusting
/// [`roots`], and building its TLS connector at the first request rather than once per
/// service client ([`ConnectOnFirstRequest`]). Connections are pooled per client: build
/// one per process and share it through the `SdkConfig`, or a fresh one where
/// connections must not be shared (another runtime).
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(ConnectOnFirstRequest(hyper_client()))
}

/// What every TLS connection of the process trusts, for the SDK's client and for
/// [`crate::outbound`].
pub(crate) fn tls_context() -> TlsContext {
    TlsContext::builder()
        .with_trust_store(roots())
        .build()
        .expect("a trust store is the only setting")
}

fn hyper_client() -> SharedHttpClient {
    let tls = tls_context();
    // The way aws-smithy-runtime builds its default client (`default_https_client`):
    // `build_https` alone would drop the proxy settings and the connector settings of
    // each client. The function is hidden from the crate's docs; the version is pinned
    // in the workspace, so a change to it is a build error, never a silent one.
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The SDK's hyper client without its eager check. Every service client built on it
/// (`aws_sdk_dynamodb::Client::new` and the like) asks the HTTP client to validate the
/// base config, and the hyper client answers by building a throwaway TLS connector, so
/// that certificate loading fails at construction rather than at the first request. That
/// parses every trust root once per service client: five times at a cold start of
/// scaler-tick, which builds five clients, before any request. Those throwaway connectors
/// are all this skips: each request still gets its connector from the hyper client,
/// built once per connect settings and shared by every service client, so the roots are
/// parsed once more, at the first request; a root that cannot be loaded fails there, and
/// [`usable`] has already kept such a bundle out.
#[derive(Debug)]
struct ConnectOnFirstRequest(SharedHttpClient);

impl HttpClient for ConnectOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The system's CA bundle alone where there is a usable one and no operator override,
/// else the SDK's native loading.
fn roots() -> TrustStore {
    match system_bundle() {
        Some(pem) => TrustStore::empty().with_pem_certificate(pem),
        None => TrustStore::default(),
    }
}

/// The system's CA bundle (PEM), read once per process: `None` where an operator names
/// roots with `SSL_CERT_FILE` or `SSL_CERT_DIR`, or no usable bundle is found, and the
/// platform's own loading applies.
fn system_bundle() -> Option<&'static [u8]> {
    static BUNDLE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let overridden = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()));
    if overridden {
        return None;
    }
    BUNDLE.get_or_init(|| first_usable(BUNDLES)).as_deref()
}

/// The contents of the first of `paths` that can be read and is [`usable`].
fn first_usable(paths: &[&str]) -> Option<Vec<u8>> {
    paths
        .iter()
        .find_map(|path| std::fs::read(path).ok().filter(|pem| usable(pem)))
}

/// A bundle every certificate of which parses as a trust anchor. The SDK refuses (panics
/// on) a custom root it cannot parse, where its native loading skips it; a bundle with
/// one such entry is left to the native loading rather than crash a cold start.
fn usable(pem: &[u8]) -> bool {
    let Ok(certs) = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>() else {
        return false;
    };
    let (valid, invalid) = RootCertStore::empty().add_parsable_certificates(certs);
    valid > 0 && invalid == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 root made for these tests (valid until 2126).
    const TEST_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIIBijCCATGgAwIBAgIUNWsOu6B6uyzBoWPS6zdF25NnXkwwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPYWxvZnQgdGVzdCByb290MCAXDTI2MTEyNjAyMTAzMVoYDzIx
MjYxMTAyMDIxMDMxWjAaMRgwFgYDVQQDDA9hbG9mdCB0ZXN0IHJvb3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAR8MHH6kEU5oy7ft9UYGyMjjw+/7SsN1k/o7tBu
yuUOQedP+pEjg1Zq/vOd25/JdTX+1dR/fw9UB4f/ZC2/VRe9o1MwUTAdBgNVHQ4E
FgQUobBGSUYH+lm+beRsRsU2KofpNQowHwYDVR0jBBgwFoAUobBGSUYH+lm+beRs
RsU2KofpNQowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBPUALM
BTEZAXVikBrRg4S0od2xoiqKKOA0R4l3heWTSwIgeAh/LKu76UOuceD7fb3GT4qV
sgjGcvvHJt2J4UyA0XM=
-----END CERTIFICATE-----
";
    const BROKEN: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_bundle_is_usable_only_if_every_certificate_in_it_parses() {
        assert!(usable(TEST_ROOT.as_bytes()));
        assert!(!usable(b""));
        assert!(!usable(b"not a certificate"));
        assert!(!usable(BROKEN.as_bytes()));
        assert!(!usable(format!("{TEST_ROOT}{BROKEN}").as_bytes()));
        if let Some(system) = BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
            assert!(usable(&system), "this machine's bundle is refused");
        }
    }

    #[test]
    fn the_first_readable_usable_bundle_is_chosen() {
        let dir = std::env::temp_dir().join(format!("aloft-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (broken, good) = (write("broken.pem", BROKEN), write("good.pem", TEST_ROOT));
        let missing = dir.join("missing.pem").to_str().unwrap().to_owned();
        assert_eq!(
            first_usable(&[&missing, &broken, &good]).as_deref(),
            Some(TEST_ROOT.as_bytes())
        );
        assert_eq!(first_usable(&[&missing, &broken]), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// An HTTP client that counts what the SDK asks of it, and whose connector refuses
    /// every request.
    #[derive(Debug, Default, Clone)]
    struct Counting(Arc<(AtomicUsize, AtomicUsize)>);

    #[derive(Debug)]
    struct Refuse;

    impl HttpConnector for Refuse {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::ready(Err(ConnectorError::other("refused".into(), None)))
        }
    }

    impl HttpClient for Counting {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.0.1.fetch_add(1, SeqCst);
            SharedHttpConnector::new(Refuse)
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.0.fetch_add(1, SeqCst);
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn service_clients_build_no_connector_until_a_request_is_sent() {
        let counting = Counting::default();
        let http = SharedHttpClient::new(ConnectOnFirstRequest(SharedHttpClient::new(
            counting.clone(),
        )));
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .http_client(http)
            .build();
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let _sqs = aws_sdk_sqs::Client::new(&sdk);
        let (validations, connectors) = (&counting.0.0, &counting.0.1);
        assert_eq!(
            validations.load(SeqCst),
            0,
            "a client built a throwaway connector"
        );
        assert_eq!(connectors.load(SeqCst), 0);

        let refused = dynamo.list_tables().send().await;
        assert!(
            refused.is_err(),
            "the counting connector refuses every request"
        );
        assert!(
            connectors.load(SeqCst) >= 1,
            "the request never reached the client"
        );
    }
}
