//! The HTTP side of a delivery: one signed POST, redirects not followed, every name
//! resolved through [`GuardedResolver`] so the address connected to is the address
//! checked (DNS rebinding can't slip a private address in after registration).

use std::time::{Duration, Instant};

use aloft_shared::outbound::{OutboundClient, OutboundError};
use aloft_shared::ssrf::{GuardedResolver, SsrfRefused};

use crate::domain::{Attempt, ErrorClass, RESPONSE_BODY_KEPT, keep_body};
use crate::ssrf::{UrlPolicy, WebhookUrl};

/// The delivery timeout of the Standard Webhooks / Svix bar.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends signed webhook POSTs.
#[derive(Debug, Clone)]
pub struct Sender {
    client: OutboundClient,
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
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Self {
        let resolver = GuardedResolver::new(policy.addresses());
        // Only the first KiB of an answer is kept: a huge or endless body can't hold
        // the worker beyond the timeout.
        let client = OutboundClient::guarded(timeout, "aloft-webhooks/1", resolver)
            .keep_at_most(RESPONSE_BODY_KEPT);
        Self { client, policy }
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
            .post(url.as_url().as_str())
            .header("webhook-id", out.webhook_id)
            .header("webhook-timestamp", out.timestamp.to_string())
            .header("webhook-signature", out.signature)
            .header("content-type", "application/json")
            .body(out.body.to_owned())
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return attempt(None, None, Some(classify(&e))),
        };
        let status = response.status().as_u16();
        let body = keep_body(response.body());
        let error = (!(200..300).contains(&status)).then_some(ErrorClass::Status);
        attempt(Some(status), Some(body).filter(|b| !b.is_empty()), error)
    }
}

fn classify(e: &OutboundError) -> ErrorClass {
    if e.caused_by::<SsrfRefused>().is_some() {
        ErrorClass::SsrfRefused
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_unsent() {
        ErrorClass::Connect
    } else {
        ErrorClass::Request
    }
}
