//! One delivery attempt as recorded: its outcome, why it failed, and the first KiB of the
//! response body.

use serde::{Deserialize, Serialize};

/// First bytes of a response body kept with an attempt.
pub const RESPONSE_BODY_KEPT: usize = 1024;

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No response within the timeout.
    Timeout,
    /// DNS, TCP or TLS failed.
    Connect,
    /// A response other than 2xx (redirects included: they are not followed).
    Status,
    /// The URL or what its name resolves to is an address webhooks may not reach.
    SsrfRefused,
    /// The subscription was disabled or deleted before the attempt.
    Disabled,
    /// Anything else the HTTP client reported.
    Request,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// The first KiB of the response body, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorClass>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The first KiB of a response body, cut on a character boundary.
pub fn keep_body(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RESPONSE_BODY_KEPT)];
    let text = String::from_utf8_lossy(cut);
    // A cut multi-byte character becomes U+FFFD; drop it rather than show garbage.
    text.trim_end_matches('\u{FFFD}').to_owned()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::domain) fn attempt(status: Option<u16>, error: Option<ErrorClass>) -> Attempt {
        Attempt {
            at: "t".into(),
            http_status: status,
            latency_ms: 1,
            response_body: None,
            error,
        }
    }

    #[test]
    fn only_2xx_without_error_succeeds() {
        assert!(attempt(Some(200), None).succeeded());
        assert!(attempt(Some(299), None).succeeded());
        assert!(!attempt(Some(301), Some(ErrorClass::Status)).succeeded());
        assert!(!attempt(Some(302), None).succeeded());
        assert!(!attempt(None, Some(ErrorClass::Connect)).succeeded());
    }

    #[test]
    fn kept_bodies_are_cut_to_a_kib_on_a_character_boundary() {
        assert_eq!(keep_body(b"ok"), "ok");
        let long = "é".repeat(1000);
        let kept = keep_body(long.as_bytes());
        assert!(kept.len() <= RESPONSE_BODY_KEPT);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
