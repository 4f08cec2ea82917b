//! HTTPS requests to services outside AWS (payment gateways, webhook receivers, health
//! checks), sent through the SDK's own HTTP client: the same hyper client, TLS stack,
//! crypto and trust roots as every AWS call ([`crate::trust_roots`]), so a binary carries
//! one HTTP stack, not two. (reqwest, which this replaces, was the largest single crate
//! of payments-api after aloft's own.)
//!
//! The API follows reqwest's names for what aloft sends: a request builder with bearer
//! and basic auth, headers, a query, a form, JSON or raw body; an answer read within the
//! timeout (whole, or a bounded prefix); and an error that says whether the request
//! provably never left ([`OutboundError::is_unsent`]), which is what decides whether a
//! payment failed or its outcome is unknown. Redirects are never followed. Clients for
//! URLs users give (webhooks, health checks) resolve names through a guard
//! ([`OutboundClient::guarded`]) so the address connected to is the address checked.

use std::time::Duration;

use ::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use ::http::{HeaderMap, Method, StatusCode};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::{Connector, ConnectorBuilder};
use aws_smithy_runtime_api::client::dns::SharedDnsResolver;
pub use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A client for one service or purpose: its connection pool, its timeout for a whole
/// exchange (connecting, sending and reading the answer), its `User-Agent`.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    connector: std::sync::Arc<Connector>,
    timeout: Duration,
    user_agent: HeaderValue,
    /// At most this much of an answer's body is read; `None`, all of it.
    keep: Option<usize>,
    /// The resolver of a guarded client, which also judges address literals.
    guard: Option<SharedDnsResolver>,
}

impl OutboundClient {
    /// Names resolved by the system; `HTTPS_PROXY`/`NO_PROXY` honoured as the SDK does;
    /// [`crate::trust_roots`] trusted.
    pub fn new(timeout: Duration, user_agent: &'static str) -> Self {
        Self::with(
            connector(ProxyConfig::from_env(), None),
            timeout,
            user_agent,
        )
    }

    /// Every name resolved through `resolver`, which may refuse it (an SSRF guard), an
    /// address literal put to it too, and never a proxy: a proxy would resolve the name
    /// itself, out of the guard's reach.
    pub fn guarded(
        timeout: Duration,
        user_agent: &'static str,
        resolver: impl ResolveDns + 'static,
    ) -> Self {
        let resolver = SharedDnsResolver::new(resolver);
        Self {
            guard: Some(resolver.clone()),
            ..Self::with(
                connector(ProxyConfig::disabled(), Some(resolver)),
                timeout,
                user_agent,
            )
        }
    }

    /// Reads at most `bytes` of each answer's body (at least what has arrived when that
    /// much has): a huge or endless body cannot hold the caller beyond the timeout. Once
    /// the status has arrived it stands: a body that stalls past the timeout or breaks
    /// off is kept as far as it was read.
    pub fn keep_at_most(mut self, bytes: usize) -> Self {
        self.keep = Some(bytes);
        self
    }

    fn with(connector: Connector, timeout: Duration, user_agent: &'static str) -> Self {
        Self {
            connector: std::sync::Arc::new(connector),
            timeout,
            user_agent: HeaderValue::from_static(user_agent),
            keep: None,
            guard: None,
        }
    }

    /// A guarded client's refusal of an address literal in `uri`. A literal never reaches
    /// the resolver, so the guard judges it here.
    async fn judge_literal(&self, uri: &::http::Uri) -> Result<(), OutboundError> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        let host = uri.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<std::net::IpAddr>().is_err() {
            return Ok(());
        }
        match guard.resolve_dns(literal).await {
            Ok(_) => Ok(()),
            Err(e) => Err(OutboundError {
                kind: Kind::Unsent,
                detail: e.to_string(),
                source: Some(Box::new(e)),
            }),
        }
    }

    pub fn get(&self, url: impl Into<String>) -> OutboundRequest<'_> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: impl Into<String>) -> OutboundRequest<'_> {
        self.request(Method::POST, url)
    }

    pub fn request(&self, method: Method, url: impl Into<String>) -> OutboundRequest<'_> {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, self.user_agent.clone());
        OutboundRequest {
            client: self,
            method,
            url: url.into(),
            headers,
            body: Bytes::new(),
            timeout: self.timeout,
            invalid: None,
        }
    }
}

/// The SDK's connector with aloft's TLS. Every guarded client resolves through a
/// `SharedDnsResolver`, so a binary compiles the hyper client at most twice (system and
/// guarded resolution), whatever the guards.
fn connector(proxy: ProxyConfig, resolver: Option<SharedDnsResolver>) -> Connector {
    let mut builder = ConnectorBuilder::default()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(crate::trust_roots::tls_context());
    builder.set_proxy_config(Some(proxy));
    match resolver {
        Some(resolver) => builder.build_with_resolver(resolver),
        None => builder.build(),
    }
}

/// One request being built; nothing is sent before [`send`](Self::send).
#[derive(Debug)]
pub struct OutboundRequest<'a> {
    client: &'a OutboundClient,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    /// The first value that could not go into the request: `send` refuses it unsent.
    invalid: Option<String>,
}

impl OutboundRequest<'_> {
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => self.refuse(format!("header {name} is not a valid header")),
        }
        self
    }

    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.authorization(format!("Bearer {token}"))
    }

    pub fn basic_auth(self, user: &str, password: Option<&str>) -> Self {
        let pair = format!("{user}:{}", password.unwrap_or_default());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.authorization(format!("Basic {encoded}"))
    }

    fn authorization(mut self, value: String) -> Self {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, v);
            }
            Err(_) => self.refuse("the credentials are not a valid header value".into()),
        }
        self
    }

    /// Appends `pairs`, form-encoded, to the URL's query.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        let encoded = form(pairs);
        if !encoded.is_empty() {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            self.url.push(separator);
            self.url.push_str(&encoded);
        }
        self
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        self.body = Bytes::from(form(pairs));
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// An `application/json` body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.refuse(format!("the body is not JSON: {e}")),
        }
        self
    }

    /// A body as it is; set `content-type` with [`header`](Self::header).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// This request's timeout instead of the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn refuse(&mut self, why: String) {
        self.invalid.get_or_insert(why);
    }

    /// Sends the request and reads the whole answer, within the client's timeout.
    pub async fn send(self) -> Result<OutboundResponse, OutboundError> {
        if let Some(why) = self.invalid {
            return Err(OutboundError::unsent(why));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || OutboundError {
            kind: Kind::Timeout,
            detail: format!("no answer within {} ms", self.timeout.as_millis()),
            source: None,
        };
        let mut request = ::http::Request::builder()
            .method(self.method)
            .uri(&self.url)
            .body(SdkBody::from(self.body))
            .map_err(|e| OutboundError::unsent(format!("{}: {e}", self.url)))?;
        *request.headers_mut() = self.headers;
        self.client.judge_literal(request.uri()).await?;
        let request =
            HttpRequest::try_from(request).map_err(|e| OutboundError::unsent(e.to_string()))?;
        let call = self.client.connector.call(request);
        let response = tokio::time::timeout_at(deadline, call)
            .await
            .map_err(|_| timed_out())?
            .map_err(OutboundError::exchange)?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .map_err(|e| OutboundError::failed(format!("status: {e}")))?;
        let response = response
            .try_into_http1x()
            .map_err(|e| OutboundError::failed(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = match self.client.keep {
            None => tokio::time::timeout_at(deadline, body.collect())
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| OutboundError::failed(format!("reading the answer: {e}")))?
                .to_bytes(),
            Some(limit) => prefix(body, limit, deadline).await,
        };
        Ok(OutboundResponse {
            status,
            headers: parts.headers,
            body,
        })
    }
}

/// The first `limit` bytes of `body`, or as much as arrived before it ended, broke off or
/// the deadline passed: the status has been read, and it is what counts.
async fn prefix(mut body: SdkBody, limit: usize, deadline: tokio::time::Instant) -> Bytes {
    let mut kept = bytes::BytesMut::new();
    while kept.len() < limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    kept.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    kept.truncate(limit);
    kept.freeze()
}

/// `a=1&b=2`, form-encoded.
fn form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k.as_ref(), v.as_ref());
    }
    out.finish()
}

/// `error`, then each error after it in its `source` chain.
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// A whole answer: status, headers and body.
#[derive(Debug)]
pub struct OutboundResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl OutboundResponse {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as read (a prefix, for a client that keeps one).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text; bytes that are not UTF-8 become U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why no answer was read.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct OutboundError {
    kind: Kind,
    detail: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing was sent: the request could not be built, or no connection was made.
    Unsent,
    Connect,
    Timeout,
    Failed,
}

impl OutboundError {
    fn unsent(detail: String) -> Self {
        Self {
            kind: Kind::Unsent,
            detail,
            source: None,
        }
    }

    fn failed(detail: String) -> Self {
        Self {
            kind: Kind::Failed,
            detail,
            source: None,
        }
    }

    /// The connector's error: `Connect` when no connection was made (nothing was sent),
    /// `Failed` otherwise.
    fn exchange(e: ConnectorError) -> Self {
        let connect = chain(&e).any(|c| {
            c.downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(|h| h.is_connect())
        });
        Self {
            kind: if connect { Kind::Connect } else { Kind::Failed },
            detail: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            source: Some(Box::new(e)),
        }
    }

    /// The first error of type `E` behind this one: e.g. the guard's refusal, which a
    /// resolver of [`OutboundClient::guarded`] returned.
    pub fn caused_by<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let source = self.source.as_deref()?;
        chain(source).find_map(|e| e.downcast_ref::<E>())
    }

    /// The request provably never reached the service: no connection could be made
    /// (refused, unresolvable, TLS refused), or it could not even be built.
    pub fn is_unsent(&self) -> bool {
        matches!(self.kind, Kind::Connect | Kind::Unsent)
    }

    /// No whole answer arrived within the timeout: the request may have been acted on.
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::any;

    /// A server that answers every request with what it received.
    async fn echo() -> String {
        let app = Router::new().fallback(any(|request: axum::extract::Request| async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({
                    "method": parts.method.as_str(),
                    "uri": parts.uri.to_string(),
                    "authorization": header("authorization"),
                    "content_type": header("content-type"),
                    "user_agent": header("user-agent"),
                    "idempotency_key": header("idempotency-key"),
                    "body": String::from_utf8(body.to_vec()).unwrap(),
                })),
            )
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// A server that accepts, reads and never answers.
    async fn silent() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    fn client(timeout: Duration) -> OutboundClient {
        OutboundClient::new(timeout, "aloft-test/1")
    }

    #[tokio::test]
    async fn requests_carry_auth_headers_query_and_bodies() {
        let url = echo().await;
        let http = client(Duration::from_secs(5));

        let answer = http
            .post(format!("{url}/v1/charges"))
            .bearer_auth("sk_test")
            .header("Idempotency-Key", "k1")
            .form(&[("amount", "1000"), ("description", "tea & cake")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let seen: serde_json::Value = answer.json().unwrap();
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["uri"], "/v1/charges");
        assert_eq!(seen["authorization"], "Bearer sk_test");
        assert_eq!(seen["idempotency_key"], "k1");
        assert_eq!(seen["user_agent"], "aloft-test/1");
        assert_eq!(seen["content_type"], "application/x-www-form-urlencoded");
        assert_eq!(seen["body"], "amount=1000&description=tea+%26+cake");

        let seen: serde_json::Value = http
            .request(Method::PATCH, format!("{url}/orders?x=1"))
            .basic_auth("client", Some("s3cret"))
            .query(&[("created[gte]", "5")])
            .json(&serde_json::json!({"a": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(seen["method"], "PATCH");
        assert_eq!(seen["uri"], "/orders?x=1&created%5Bgte%5D=5");
        assert_eq!(seen["authorization"], "Basic Y2xpZW50OnMzY3JldA==");
        assert_eq!(seen["content_type"], "application/json");
        assert_eq!(seen["body"], r#"{"a":1}"#);
    }

    #[tokio::test]
    async fn a_refused_connection_is_known_unsent() {
        // Bound, then closed: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = client(Duration::from_secs(5))
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_unsent(), "{e}");
        assert!(!e.is_timeout());
    }

    #[tokio::test]
    async fn a_silent_service_is_a_timeout_not_a_refusal() {
        // Accepts, reads, never answers: the request was sent, its effect is unknown.
        let addr = silent().await;
        let e = client(Duration::from_millis(300))
            .post(format!("http://{addr}/v1/charges"))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(!e.is_unsent());
    }

    #[tokio::test]
    async fn a_bad_header_value_is_refused_before_anything_is_sent() {
        let e = client(Duration::from_secs(5))
            .get("http://127.0.0.1:9/")
            .header("idempotency-key", "line\nbreak")
            .send()
            .await
            .unwrap_err();
        assert!(e.is_unsent(), "nothing was sent: {e}");
        assert!(e.to_string().contains("idempotency-key"), "{e}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0} is not allowed")]
    struct Refused(String);

    /// Refuses `refused`, resolves everything else to loopback.
    #[derive(Debug)]
    struct Guard {
        refused: &'static str,
    }

    impl ResolveDns for Guard {
        fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
            DnsFuture::ready(if name == self.refused {
                Err(ResolveDnsError::new(Refused(name.to_owned())))
            } else {
                Ok(vec![std::net::Ipv4Addr::LOCALHOST.into()])
            })
        }
    }

    #[tokio::test]
    async fn a_guarded_client_connects_only_where_its_resolver_allows() {
        let url = echo().await;
        let port = url.rsplit(':').next().unwrap();
        let http = OutboundClient::guarded(
            Duration::from_secs(5),
            "aloft-test/1",
            Guard {
                refused: "internal.example",
            },
        );
        let e = http
            .get(format!("http://internal.example:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_unsent(), "{e}");
        let refused = e.caused_by::<Refused>().expect("the guard's refusal");
        assert_eq!(refused.0, "internal.example");

        let answer = http
            .post(format!("http://allowed.example:{port}/hook"))
            .header("content-type", "application/json")
            .body(r#"{"id":1}"#)
            .send()
            .await
            .unwrap();
        let seen: serde_json::Value = answer.json().unwrap();
        assert_eq!(seen["body"], r#"{"id":1}"#);
        assert_eq!(seen["content_type"], "application/json");
    }

    #[tokio::test]
    async fn a_client_keeping_a_prefix_reads_no_further_and_a_request_has_its_own_timeout() {
        let url = echo().await;
        let http = client(Duration::from_secs(5)).keep_at_most(16);
        let answer = http
            .post(format!("{url}/"))
            .body("x".repeat(10_000))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        assert_eq!(answer.text().len(), 16);

        let addr = silent().await;
        let e = http
            .get(format!("http://{addr}/"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(
            e.to_string().contains("200 ms"),
            "the client's timeout ran: {e}"
        );
    }

    #[tokio::test]
    async fn a_guarded_client_puts_address_literals_to_its_guard_too() {
        let url = echo().await; // http://127.0.0.1:PORT
        let guard = Guard {
            refused: "127.0.0.1",
        };
        let http = OutboundClient::guarded(Duration::from_secs(5), "aloft-test/1", guard);
        let e = http.get(format!("{url}/")).send().await.unwrap_err();
        assert!(e.is_unsent(), "{e}");
        assert_eq!(e.caused_by::<Refused>().expect("refused").0, "127.0.0.1");
    }

    #[tokio::test]
    async fn once_the_status_arrived_a_stalled_body_keeps_it() {
        // 200 and a few bytes, then nothing: a receiver that accepted the webhook.
        let app = Router::new().fallback(any(|| async {
            let first = futures::stream::once(async {
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b"ok"))
            });
            axum::body::Body::from_stream(futures::StreamExt::chain(
                first,
                futures::stream::pending(),
            ))
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let kept = client(Duration::from_millis(300)).keep_at_most(1024);
        let answer = kept.get(format!("{url}/")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text(), "ok");

        // Read whole, the same answer is no answer.
        let whole = client(Duration::from_millis(300));
        let e = whole.get(format!("{url}/")).send().await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
    }
}
