//! DynamoDB plumbing every store shares: one error type for "the store failed" (which
//! knows whether the service was busy, out of reach or it was our bug, and answers 503 or
//! 500 accordingly) and the reading of transaction cancellation reasons, so each store can
//! map the condition that failed to its own domain error.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::retry::ErrorKind;
use http::{HeaderValue, StatusCode, header};

use crate::problem::Problem;

pub type Item = std::collections::HashMap<String, AttributeValue>;

/// How long a caller should wait after DynamoDB throttled a request, in seconds (the
/// `Retry-After` of a `database-busy` 503). Capacity is metered per second, so a second
/// later the partition has a fresh budget.
pub const RETRY_AFTER_BUSY_SECS: u32 = 1;

/// How long a caller should wait after DynamoDB (or SQS) did not answer, could not be
/// reached or failed on its side, in seconds (the `Retry-After` of a
/// `database-unavailable` 503): longer than one function's call timeout, so retries do
/// not pile onto an outage.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 5;

/// The store could not do its job. Never the caller's fault: a throttled, unreachable or
/// failing AWS service is a 503 with `Retry-After` (after the SDK's own bounded retries,
/// within [`crate::aws::call_timeout`]); anything else (a bug in item mapping, a refused
/// request) is a 500. Either way the cause is logged, not returned.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: StoreFailure,
    message: String,
}

/// Why a store call failed, as far as the caller should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// The service refused the request for capacity (throttling); it was not applied.
    Throttled,
    /// No answer within the call timeout, or a transaction still in progress: a write
    /// may or may not have been applied (whole, never in part).
    TimedOut,
    /// No connection could be made or kept to the service.
    Unreachable,
    /// The service answered with a server-side error (5xx).
    ServerError,
    /// Anything else: our bug, a malformed item, a request the service rejected.
    Internal,
}

/// Error codes AWS services use for "slow down" that DynamoDB and SQS can answer on the
/// data plane (the SDK's standard retry treats them as throttling, and retries them).
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "RequestThrottled",
    "KmsThrottled",
];

/// Codes for a failure on the service's side, whatever the status it came with.
const SERVER_ERROR_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The transaction with this client request token is still running (our own earlier
/// attempt): it may yet commit, so the honest answer is "did not finish in time", not
/// "refused".
const IN_PROGRESS_CODE: &str = "TransactionInProgressException";

/// Cancellation reasons of a transaction that DynamoDB throttled (nothing committed).
const THROTTLED_CANCELLATION_CODES: &[&str] = &["ProvisionedThroughputExceeded", "ThrottlingError"];

impl StoreError {
    /// An internal failure (500): `context` says what was being done.
    pub fn new(context: &str, err: impl std::fmt::Display) -> Self {
        Self::internal(format!("{context}: {err}"))
    }

    /// An internal failure (500) described by `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::of(StoreFailure::Internal, message)
    }

    /// A failure of `kind`; `message` is logged, never returned.
    pub fn of(kind: StoreFailure, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A cancelled transaction, by its cancellation reason `codes`: throttled when any
    /// item was throttled, otherwise internal (a condition the store did not map, a
    /// conflict it did not retry).
    pub fn cancelled(codes: &[String], message: impl Into<String>) -> Self {
        let throttled = codes
            .iter()
            .any(|c| THROTTLED_CANCELLATION_CODES.contains(&c.as_str()));
        let kind = if throttled {
            StoreFailure::Throttled
        } else {
            StoreFailure::Internal
        };
        Self::of(kind, message)
    }

    pub fn kind(&self) -> StoreFailure {
        self.kind
    }

    /// Whether the service was busy or out of reach, so trying again later may work.
    pub fn is_unavailable(&self) -> bool {
        self.kind != StoreFailure::Internal
    }
}

/// What an SDK error means for the caller. Both DynamoDB and SQS errors are this one
/// `SdkError` type, so a queue a store writes to is classified the same way.
pub fn classify<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> StoreFailure {
    match e {
        SdkError::TimeoutError(_) => StoreFailure::TimedOut,
        SdkError::DispatchFailure(f) if f.is_timeout() => StoreFailure::TimedOut,
        SdkError::DispatchFailure(f) if f.is_io() => StoreFailure::Unreachable,
        SdkError::DispatchFailure(f) => match f.as_other() {
            Some(ErrorKind::ThrottlingError) => StoreFailure::Throttled,
            Some(ErrorKind::TransientError | ErrorKind::ServerError) => StoreFailure::Unreachable,
            // A user error (bad endpoint, TLS set-up) or an unknown one is ours to fix.
            _ => StoreFailure::Internal,
        },
        SdkError::ResponseError(r) if r.raw().status().is_server_error() => {
            StoreFailure::ServerError
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            if THROTTLING_CODES.contains(&code) {
                StoreFailure::Throttled
            } else if code == IN_PROGRESS_CODE {
                StoreFailure::TimedOut
            } else if SERVER_ERROR_CODES.contains(&code) || s.raw().status().is_server_error() {
                StoreFailure::ServerError
            } else {
                StoreFailure::Internal
            }
        }
        _ => StoreFailure::Internal,
    }
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> From<SdkError<E, HttpResponse>>
    for StoreError
{
    fn from(e: SdkError<E, HttpResponse>) -> Self {
        Self::of(classify(&e), DisplayErrorContext(e).to_string())
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        Self::internal(format!("item mapping: {e}"))
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        let (slug, title, retry_after, detail) = match e.kind {
            StoreFailure::Internal => {
                tracing::error!(error = %e, "store failure");
                return Problem::internal();
            }
            StoreFailure::Throttled => (
                "database-busy",
                "Database busy",
                RETRY_AFTER_BUSY_SECS,
                "the database is busy and refused this request, also when retried",
            ),
            StoreFailure::TimedOut => (
                "database-unavailable",
                "Database unavailable",
                RETRY_AFTER_UNAVAILABLE_SECS,
                "the database did not answer in time; a write either took effect whole or \
                 not at all",
            ),
            StoreFailure::Unreachable => (
                "database-unavailable",
                "Database unavailable",
                RETRY_AFTER_UNAVAILABLE_SECS,
                "the database could not be reached",
            ),
            StoreFailure::ServerError => (
                "database-unavailable",
                "Database unavailable",
                RETRY_AFTER_UNAVAILABLE_SECS,
                "the database failed on its side; a write either took effect whole or not \
                 at all",
            ),
        };
        tracing::warn!(error = %e, kind = ?e.kind, "store unavailable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, slug, title)
            .detail(format!("{detail}; retry after {retry_after} s"))
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after))
    }
}

/// DynamoDB numbers run from 1e-130 to 1e126 in magnitude (38 digits): a value nearer
/// zero than [`SMALLEST_STORED`] is stored as 0 rather than refused by DynamoDB as a
/// 500. Parsers also bound every free number well below the top (see each field's
/// maximum in openapi.yaml).
pub fn storable(v: f64) -> f64 {
    if v.abs() < SMALLEST_STORED { 0.0 } else { v }
}

/// Magnitudes below this are stored as 0 (see [`storable`]).
pub const SMALLEST_STORED: f64 = 1e-100;

/// The cancellation reason code of each item of a cancelled transaction, in request
/// order (`"None"` for items that did not fail), or `None` if the error is not a
/// cancellation.
pub fn cancellation_codes(err: &SdkError<TransactWriteItemsError>) -> Option<Vec<String>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Whether item `index` of a cancelled transaction failed its condition.
pub fn condition_failed_at(codes: &[String], index: usize) -> bool {
    codes
        .get(index)
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// How big a benchmark run is: `full` under `cargo bench` (which passes `--bench` to a
/// benchmark binary), `smoke` when `cargo test --all-targets` runs it, so `make test`
/// keeps every benchmark working without paying for its full run.
pub fn bench_size(full: usize, smoke: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") {
        full
    } else {
        smoke
    }
}

/// Counts the DynamoDB requests a client sends, by operation (`Query`, `UpdateItem`, …),
/// retries included. Benchmarks attach it to report requests per API call, the number
/// DynamoDB bills.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
);

impl RequestCounter {
    /// A client for `config` that counts into this counter.
    pub fn client(&self, config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// Requests so far, by operation, and resets the count.
    pub fn take(&self) -> std::collections::BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').next_back())
            .unwrap_or("unknown")
            .to_owned();
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::types::error::{
        InternalServerError, ProvisionedThroughputExceededException, RequestLimitExceeded,
        ThrottlingException,
    };
    use aws_smithy_types::body::SdkBody;
    use axum::response::IntoResponse;

    /// An HTTP answer with `status` and no body, as the SDK keeps it beside an error.
    fn raw(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    /// The metadata the SDK's deserializer reads from an error answer.
    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message("from the service")
            .build()
    }

    /// A `GetItem` service error as the SDK builds it: a modeled variant (or the generic
    /// one for codes the model does not name) carrying the answer's metadata.
    fn get_item(code: &str, status: u16) -> SdkError<GetItemError, HttpResponse> {
        let err = match code {
            "ProvisionedThroughputExceededException" => {
                GetItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .meta(meta(code))
                        .build(),
                )
            }
            "ThrottlingException" => GetItemError::ThrottlingException(
                ThrottlingException::builder().meta(meta(code)).build(),
            ),
            "RequestLimitExceeded" => GetItemError::RequestLimitExceeded(
                RequestLimitExceeded::builder().meta(meta(code)).build(),
            ),
            "InternalServerError" => GetItemError::InternalServerError(
                InternalServerError::builder()
                    .message("internal")
                    .meta(meta(code))
                    .build(),
            ),
            other => GetItemError::generic(meta(other)),
        };
        SdkError::service_error(err, raw(status))
    }

    fn sqs_send(
        code: &str,
        status: u16,
    ) -> SdkError<aws_sdk_sqs::operation::send_message::SendMessageError, HttpResponse> {
        let err = aws_sdk_sqs::operation::send_message::SendMessageError::generic(meta(code));
        SdkError::service_error(err, raw(status))
    }

    /// Status, `Retry-After` and body of the problem `e` becomes.
    async fn answer(e: StoreError) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = Problem::from(e).into_response();
        let status = r.status();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE
        );
        let retry_after = r
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, retry_after, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn throttling_is_a_503_database_busy_with_retry_after() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            let e = StoreError::from(get_item(code, 400));
            assert_eq!(e.kind(), StoreFailure::Throttled, "{code}");
            let (status, retry_after, body) = answer(e).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(retry_after.as_deref(), Some("1"), "{code}");
            assert_eq!(body["type"], "urn:aloft:problem:database-busy");
            assert_eq!(body["status"], 503);
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("the database is busy"), "{detail}");
            assert!(detail.ends_with("retry after 1 s"), "{detail}");
        }
        // SQS says the same thing its own way.
        for code in ["RequestThrottled", "KmsThrottled", "ThrottlingException"] {
            assert_eq!(
                StoreError::from(sqs_send(code, 400)).kind(),
                StoreFailure::Throttled,
                "{code}"
            );
        }
    }

    #[tokio::test]
    async fn no_answer_no_connection_or_a_server_error_is_a_503_database_unavailable() {
        let cases: Vec<(&str, SdkError<GetItemError, HttpResponse>, StoreFailure)> = vec![
            (
                "operation timeout",
                SdkError::timeout_error("operation timed out"),
                StoreFailure::TimedOut,
            ),
            (
                "connect timeout",
                SdkError::dispatch_failure(ConnectorError::timeout("connect timed out".into())),
                StoreFailure::TimedOut,
            ),
            (
                "connection refused",
                SdkError::dispatch_failure(ConnectorError::io("connection refused".into())),
                StoreFailure::Unreachable,
            ),
            (
                "transient connector error",
                SdkError::dispatch_failure(ConnectorError::other(
                    "reset".into(),
                    Some(ErrorKind::TransientError),
                )),
                StoreFailure::Unreachable,
            ),
            (
                "InternalServerError",
                get_item("InternalServerError", 500),
                StoreFailure::ServerError,
            ),
            (
                "ServiceUnavailable",
                get_item("ServiceUnavailable", 503),
                StoreFailure::ServerError,
            ),
            (
                "an unnamed 5xx",
                get_item("SomethingNew", 502),
                StoreFailure::ServerError,
            ),
            (
                "an unreadable 5xx (a proxy's page)",
                SdkError::response_error("not JSON", raw(504)),
                StoreFailure::ServerError,
            ),
            (
                "our own transaction still running",
                get_item("TransactionInProgressException", 400),
                StoreFailure::TimedOut,
            ),
        ];
        for (name, err, kind) in cases {
            let e = StoreError::from(err);
            assert_eq!(e.kind(), kind, "{name}");
            assert!(e.is_unavailable(), "{name}");
            let (status, retry_after, body) = answer(e).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
            assert_eq!(retry_after.as_deref(), Some("5"), "{name}");
            assert_eq!(
                body["type"], "urn:aloft:problem:database-unavailable",
                "{name}"
            );
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.starts_with("the database "), "{name}: {detail}");
            assert!(detail.ends_with("retry after 5 s"), "{name}: {detail}");
        }
        assert_eq!(
            StoreError::from(sqs_send("InternalError", 500)).kind(),
            StoreFailure::ServerError
        );
    }

    #[tokio::test]
    async fn anything_else_is_a_500_that_keeps_the_cause_out_of_the_answer() {
        let cases: Vec<(&str, StoreError)> = vec![
            (
                "ValidationException",
                get_item("ValidationException", 400).into(),
            ),
            (
                "ResourceNotFoundException",
                get_item("ResourceNotFoundException", 400).into(),
            ),
            (
                "AccessDeniedException",
                get_item("AccessDeniedException", 400).into(),
            ),
            (
                "construction failure",
                SdkError::<GetItemError, HttpResponse>::construction_failure("no region").into(),
            ),
            (
                "a user error in the connector",
                SdkError::<GetItemError, HttpResponse>::dispatch_failure(ConnectorError::user(
                    "bad endpoint".into(),
                ))
                .into(),
            ),
            (
                "an unreadable 200",
                SdkError::<GetItemError, HttpResponse>::response_error("garbled", raw(200)).into(),
            ),
            (
                "a mapping bug",
                StoreError::new("put user", "missing field"),
            ),
            (
                "kept changing",
                StoreError::internal("user u1 kept changing"),
            ),
        ];
        for (name, e) in cases {
            assert_eq!(e.kind(), StoreFailure::Internal, "{name}");
            let cause = e.to_string();
            let (status, retry_after, body) = answer(e).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{name}");
            assert_eq!(retry_after, None, "{name}");
            assert_eq!(body["type"], "urn:aloft:problem:internal", "{name}");
            assert!(
                !body.to_string().contains(&cause),
                "{name}: the cause leaked: {body}"
            );
        }
    }

    #[test]
    fn a_transaction_cancelled_for_throttling_is_busy_and_any_other_is_internal() {
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for throttled in ["ThrottlingError", "ProvisionedThroughputExceeded"] {
            let e = StoreError::cancelled(&codes(&["None", throttled]), "cancelled");
            assert_eq!(e.kind(), StoreFailure::Throttled, "{throttled}");
        }
        for other in [
            &["ConditionalCheckFailed", "None"][..],
            &["None", "TransactionConflict"],
            &["ValidationError"],
        ] {
            let e = StoreError::cancelled(&codes(other), "cancelled");
            assert_eq!(e.kind(), StoreFailure::Internal, "{other:?}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// A number made storable is 0 or keeps its value, lies in DynamoDB's range
            /// (from 1e-130 in magnitude) whenever it is below its top, and stays itself
            /// when made storable again.
            #[test]
            fn storable_numbers_are_a_fixed_point(
                v in prop_oneof![
                    any::<f64>(),
                    -1e-90f64..1e-90,
                    proptest::sample::select(vec![0.0, -0.0, 5e-324, 1e-130, SMALLEST_STORED, SMALLEST_STORED.next_down(), 1e12]),
                ],
            ) {
                let s = storable(v);
                prop_assert!(s == 0.0 || s.to_bits() == v.to_bits() || (v.is_nan() && s.is_nan()));
                if v.is_finite() && v.abs() < 1e126 {
                    prop_assert!(s == 0.0 || s.abs() >= 1e-130);
                }
                prop_assert_eq!(storable(s).to_bits(), s.to_bits());
            }
        }
    }
}
