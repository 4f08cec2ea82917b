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

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
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

/// A hyper 1.x + rustls (aws-lc) client, as the SDK's default is, trusting [`roots`].
/// Connections are pooled per client: build one per process and share it through the
/// `SdkConfig`, or a fresh one where connections must not be shared (another runtime).
pub fn https_client() -> SharedHttpClient {
    let tls = TlsContext::builder()
        .with_trust_store(roots())
        .build()
        .expect("a trust store is the only setting");
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https()
}

/// The system's CA bundle alone where there is a usable one and no operator override,
/// else the SDK's native loading.
fn roots() -> TrustStore {
    match system_bundle() {
        Some(pem) => TrustStore::empty().with_pem_certificate(pem),
        None => TrustStore::default(),
    }
}

/// The same roots for a reqwest client (webhook deliveries, gateways, health checks):
/// the bundle alone where [`https_client`] trusts it, else reqwest's platform verifier,
/// which would otherwise read the certificate directories at every cold start too.
pub fn reqwest_roots(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    match system_bundle().and_then(|pem| reqwest::Certificate::from_pem_bundle(pem).ok()) {
        Some(certs) => builder.tls_certs_only(certs),
        None => builder,
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
    BUNDLE
        .get_or_init(|| {
            BUNDLES
                .iter()
                .find_map(|path| std::fs::read(path).ok().filter(|pem| usable(pem)))
        })
        .as_deref()
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

    #[test]
    fn a_reqwest_client_builds_with_the_same_roots() {
        reqwest_roots(reqwest::Client::builder()).build().unwrap();
    }

    #[test]
    fn a_bundle_is_usable_only_if_every_certificate_in_it_parses() {
        assert!(!usable(b""));
        assert!(!usable(b"not a certificate"));
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(!usable(broken));
        if let Some(system) = BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
            assert!(usable(&system), "this machine's bundle is refused");
            let mut with_broken = system.clone();
            with_broken.extend_from_slice(broken);
            assert!(!usable(&with_broken));
        }
    }
}
