//! HTTPS requests to services outside AWS (the payment gateways), sent through the SDK's
//! own HTTP client: the same hyper client, TLS stack, crypto and trust roots as every AWS
//! call ([`crate::trust_roots`]), so a binary carries one HTTP stack, not two. (reqwest,
//! which this replaces, was the largest single crate of payments-api after aloft's own.)
//!
//! The API follows reqwest's names for what the gateways use: a request builder with
//! bearer and basic auth, headers, a query, a form or JSON body; an answer read whole
//! within the client's timeout; and an error that says whether the request provably
//! never left ([`OutboundError::is_unsent`]), which is what decides whether a payment
//! failed or its outcome is unknown. Redirects are never followed.

use std::time::Duration;

use ::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use ::http::{HeaderMap, Method, StatusCode};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::{Connector, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A client for one service: its connection pool, its timeout for a whole exchange
/// (connecting, sending and reading the answer), its `User-Agent`.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    connector: std::sync::Arc<Connector>,
    timeout: Duration,
    user_agent: HeaderValue,
}

impl OutboundClient {
    /// Honours `HTTPS_PROXY`/`NO_PROXY` as the SDK does; trusts [`crate::trust_roots`].
    pub fn new(timeout: Duration, user_agent: &'static str) -> Self {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .tls_context(crate::trust_roots::tls_context());
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        Self {
            connector: std::sync::Arc::new(connector.build()),
            timeout,
            user_agent: HeaderValue::from_static(user_agent),
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
            invalid: None,
        }
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

    fn refuse(&mut self, why: String) {
        self.invalid.get_or_insert(why);
    }

    /// Sends the request and reads the whole answer, within the client's timeout.
    pub async fn send(self) -> Result<OutboundResponse, OutboundError> {
        if let Some(why) = self.invalid {
            return Err(OutboundError::unsent(why));
        }
        let mut request = ::http::Request::builder()
            .method(self.method)
            .uri(&self.url)
            .body(SdkBody::from(self.body))
            .map_err(|e| OutboundError::unsent(format!("{}: {e}", self.url)))?;
        *request.headers_mut() = self.headers;
        let request =
            HttpRequest::try_from(request).map_err(|e| OutboundError::unsent(e.to_string()))?;
        let connector = &self.client.connector;
        let exchange = async move {
            let response = connector.call(request).await.map_err(|e| {
                let connect = chain(&e).any(|c| {
                    c.downcast_ref::<hyper_util::client::legacy::Error>()
                        .is_some_and(|h| h.is_connect())
                });
                OutboundError {
                    kind: if connect { Kind::Connect } else { Kind::Failed },
                    detail: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                }
            })?;
            let status = StatusCode::from_u16(response.status().as_u16())
                .map_err(|e| OutboundError::failed(format!("status: {e}")))?;
            let response = response
                .try_into_http1x()
                .map_err(|e| OutboundError::failed(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| OutboundError::failed(format!("reading the answer: {e}")))?;
            Ok(OutboundResponse {
                status,
                headers: parts.headers,
                body: body.to_bytes(),
            })
        };
        tokio::time::timeout(self.client.timeout, exchange)
            .await
            .unwrap_or(Err(OutboundError {
                kind: Kind::Timeout,
                detail: format!("no answer within {:?}", self.client.timeout),
            }))
    }
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
        }
    }

    fn failed(detail: String) -> Self {
        Self {
            kind: Kind::Failed,
            detail,
        }
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
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
}
