//! The HTTP side of a delivery: one signed POST, redirects not followed, every name
//! resolved through [`GuardedResolver`] so the address connected to is the address
//! checked (DNS rebinding can't slip a private address in after registration).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::{Attempt, ErrorClass, RESPONSE_BODY_KEPT, keep_body};
use crate::ssrf::{UrlPolicy, WebhookUrl};

/// The delivery timeout of the Standard Webhooks / Svix bar.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves with the system resolver, then drops every address the policy refuses; a
/// name left with none fails the connection with `aloft_shared::ssrf::SsrfRefused`.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: UrlPolicy,
}

impl GuardedResolver {
    pub fn new(policy: UrlPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.addresses();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed = aloft_shared::ssrf::resolve_allowed(&host, policy).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Sends signed webhook POSTs.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: UrlPolicy,
}

/// One request to make.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub url: &'a WebhookUrl,
    pub webhook_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a str,
}

impl Sender {
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = aloft_shared::trust_roots::reqwest_roots(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, out of the resolver's reach.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent("aloft-webhooks/1")
            .build()?;
        Ok(Self { client, policy })
    }

    /// POSTs and reports the attempt; never fails (a failure is an attempt's outcome).
    pub async fn send(&self, out: &Outgoing<'_>, at: String) -> Attempt {
        let started = Instant::now();
        let attempt = |http_status, response_body, error| Attempt {
            at: at.clone(),
            http_status,
            latency_ms: started.elapsed().as_millis() as u64,
            response_body,
            error,
        };
        // The stored URL was checked at registration; check it again under today's
        // policy (an IP literal never reaches the resolver).
        let url = match WebhookUrl::parse(out.url.as_str(), self.policy) {
            Ok(u) => u,
            Err(_) => return attempt(None, None, Some(ErrorClass::SsrfRefused)),
        };
        let response = self
            .client
            .post(url.as_url().clone())
            .header("webhook-id", out.webhook_id)
            .header("webhook-timestamp", out.timestamp.to_string())
            .header("webhook-signature", out.signature)
            .header("content-type", "application/json")
            .body(out.body.to_owned())
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return attempt(None, None, Some(classify(&e))),
        };
        let status = response.status().as_u16();
        let body = read_prefix(&mut response).await;
        let error = (!(200..300).contains(&status)).then_some(ErrorClass::Status);
        attempt(Some(status), Some(body).filter(|b| !b.is_empty()), error)
    }
}

/// The first KiB of the body; the rest is never read (a huge or endless body can't
/// hold the worker beyond the timeout).
async fn read_prefix(response: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < RESPONSE_BODY_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    keep_body(&buf)
}

fn classify(e: &reqwest::Error) -> ErrorClass {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<aloft_shared::ssrf::SsrfRefused>() {
            return ErrorClass::SsrfRefused;
        }
        source = s.source();
    }
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::Request
    }
}
