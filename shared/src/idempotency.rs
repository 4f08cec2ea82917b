//! Idempotent writes, with the semantics users of Stripe and Powertools expect.
//!
//! A request carrying an `Idempotency-Key` takes a record keyed by (API key, operation,
//! idempotency key) with a conditional write *before* any side effect; the record is
//! written in the same transaction as the operation's first state, so taking the lock
//! costs no extra request. Then:
//!
//! - same key, same request (fingerprint of method, path and canonical body), finished
//!   → the stored status and body again (`Idempotent-Replayed: true`), no second effect;
//! - same key, different request → 422 `idempotency-key-reused`;
//! - same key while the first is still running → 409 `idempotency-in-progress` with
//!   `Retry-After`;
//! - a lock whose function died is [`Conflict::Abandoned`] after [`LOCK_TIMEOUT_SECS`]:
//!   a request with the *same* body takes it over ([`IdempotencyStore::take_over`]) and
//!   resumes the resource the first one started (the record names it), never a second
//!   one; a different body is still `idempotency-key-reused`. Each holder has its own
//!   token, and only the current holder can store the answer, so a slow first holder
//!   that wakes up after a takeover cannot overwrite it.
//! - records expire after [`RECORD_TTL_SECS`]. Lock and record expiry are checked in
//!   code against the clock: DynamoDB TTL only cleans up.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::dynamo::{StoreError, n, s};
use crate::master_key::DerivedKey;
use crate::problem::{FieldError, Problem};

/// How long a request may hold its key before another may take over.
pub const LOCK_TIMEOUT_SECS: i64 = 60;
/// How long a finished request's answer is replayed.
pub const RECORD_TTL_SECS: i64 = 24 * 3600;
pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The `Idempotency-Key` header: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Self, Problem> {
        let invalid = |message: &str| {
            Problem::bad_request(
                "invalid-idempotency-key",
                format!("Idempotency-Key {message}"),
            )
            .with_errors(vec![FieldError::new("Idempotency-Key", message)])
        };
        let raw = headers.get(HEADER).ok_or_else(|| {
            Problem::bad_request(
                "idempotency-key-required",
                "send an Idempotency-Key header (e.g. a UUID) so a retried request never charges twice",
            )
            .with_errors(vec![FieldError::new("Idempotency-Key", "is required")])
        })?;
        let value = raw
            .to_str()
            .map_err(|_| invalid("must be printable ASCII"))?;
        if value.is_empty() || value.len() > 255 {
            return Err(invalid("must be 1 to 255 characters"));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid("must be printable ASCII"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same": method, path and the canonical JSON body (keys
/// sorted, insignificant whitespace dropped), under a keyed HMAC. Keyed, because bodies
/// may hold secrets (a card number, a CVC) and a plain hash of a low-entropy secret can
/// be brute-forced from the stored record.
pub fn fingerprint(key: &DerivedKey, method: &str, path: &str, body: &serde_json::Value) -> String {
    // serde_json's map is ordered by key, so `to_string` is canonical.
    let canonical = format!("{method}\n{path}\n{body}");
    key.sign(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A finished request's answer, as replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

impl StoredResponse {
    pub fn into_replay(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    pk: String,
    fingerprint: String,
    state: RecordState,
    locked_until: i64,
    expires_at: i64,
    /// Who holds the lock: changes on every takeover.
    #[serde(default)]
    token: String,
    /// What the request created first (a payment id, a refund id), so a takeover
    /// resumes it instead of creating another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<StoredResponse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordState {
    InProgress,
    Completed,
}

/// Why a request could not take its idempotency key, decided from the record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Finished before: answer with this again.
    Replay(StoredResponse),
    /// Another request with this key is running; retry after this many seconds.
    InProgress { retry_after_secs: i64 },
    /// The key was used for a different request.
    Reused,
    /// The record vanished or expired between the failed write and the read: retry now.
    Gone,
    /// Same request, but its holder's lock timed out (the function died): take it over
    /// with [`IdempotencyStore::take_over`] and resume [`Abandoned::resource`].
    Abandoned(Abandoned),
}

/// A lock whose holder died, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    pk: String,
    token: String,
    resource: Option<String>,
}

impl Abandoned {
    /// What the dead holder created (its payment or refund id).
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
}

impl Conflict {
    pub fn into_response(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        match self {
            Conflict::Replay(stored) => stored.into_replay(),
            Conflict::InProgress { retry_after_secs } => {
                Problem::new(StatusCode::CONFLICT, "idempotency-in-progress", "Request in progress")
                    .detail("a request with this Idempotency-Key is still being processed; retry later")
                    .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)))
                    .into_response()
            }
            Conflict::Reused => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused")
                    .detail("this Idempotency-Key was used for a different request; use a new key for a new request")
                    .with_errors(vec![FieldError::new("Idempotency-Key", "was used with a different request")])
                    .into_response()
            }
            Conflict::Gone | Conflict::Abandoned(_) => Problem::new(StatusCode::CONFLICT, "idempotency-in-progress", "Request in progress")
                .detail("retry the request")
                .header(header::RETRY_AFTER, HeaderValue::from(1))
                .into_response(),
        }
    }
}

/// The records of one table. Operations name themselves (`payments.create`) so one key
/// may be reused across different operations without colliding.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// A taken key: what `complete` needs to store the answer as its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pk: String,
    token: String,
}

impl IdempotencyStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    fn pk(caller: &str, operation: &str, key: &IdempotencyKey) -> String {
        format!("{caller}#{operation}#{}", key.as_str())
    }

    /// The transaction item that takes the key for a request creating `resource`:
    /// succeeds when there is no record or it expired. A record whose holder died is not
    /// taken here: [`IdempotencyStore::conflict`] reports it [`Conflict::Abandoned`] (same
    /// request) or [`Conflict::Reused`] (another one).
    pub fn take(
        &self,
        caller: &str,
        operation: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        resource: &str,
        now_secs: i64,
    ) -> Result<(Lock, TransactWriteItem), StoreError> {
        let pk = Self::pk(caller, operation, key);
        let token = uuid::Uuid::new_v4().to_string();
        let record = Record {
            pk: pk.clone(),
            fingerprint: fingerprint.to_owned(),
            state: RecordState::InProgress,
            locked_until: now_secs + LOCK_TIMEOUT_SECS,
            expires_at: now_secs + RECORD_TTL_SECS,
            token: token.clone(),
            resource: Some(resource.to_owned()),
            response: None,
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(record)?))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now_secs))
            .build()
            .map_err(|e| StoreError::new("idempotency put", e))?;
        Ok((
            Lock { pk, token },
            TransactWriteItem::builder().put(put).build(),
        ))
    }

    /// Takes over an abandoned lock. `None` when another request took it first (or its
    /// holder finished after all): read the conflict again.
    pub async fn take_over(
        &self,
        abandoned: &Abandoned,
        now_secs: i64,
    ) -> Result<Option<Lock>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&abandoned.pk))
            .update_expression("SET #token = :token, locked_until = :until")
            .condition_expression(
                "#state = :in_progress AND #token = :dead AND locked_until < :now",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":dead", s(&abandoned.token))
            .expression_attribute_values(":until", n(now_secs + LOCK_TIMEOUT_SECS))
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(Lock {
                pk: abandoned.pk.clone(),
                token,
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After `take`'s condition failed: what is there, and what to answer.
    pub async fn conflict(
        &self,
        caller: &str,
        operation: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
        now_secs: i64,
    ) -> Result<Conflict, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(Self::pk(caller, operation, key)))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item else {
            return Ok(Conflict::Gone);
        };
        let record: Record = serde_dynamo::from_item(item)?;
        Ok(decide(&record, fingerprint, now_secs))
    }

    /// The transaction item that stores the answer, conditioned on still holding the lock
    /// (its token, so a holder that was taken over cannot answer).
    pub fn complete(
        &self,
        lock: &Lock,
        response: &StoredResponse,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&lock.pk))
            .update_expression("SET #state = :completed, #response = :response")
            .condition_expression("#state = :in_progress AND #token = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":token", s(&lock.token))
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(
                ":response",
                aws_sdk_dynamodb::types::AttributeValue::M(serde_dynamo::to_item(response)?),
            )
            .build()
            .map_err(|e| StoreError::new("idempotency update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Frees the key when the request failed before any effect, so a retry may run.
    pub async fn release(&self, lock: &Lock) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&lock.pk))
            .condition_expression("#state = :in_progress AND #token = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":token", s(&lock.token))
            .send()
            .await?;
        Ok(())
    }
}

fn decide(record: &Record, fingerprint: &str, now_secs: i64) -> Conflict {
    if record.expires_at < now_secs {
        return Conflict::Gone;
    }
    if record.fingerprint != fingerprint {
        return Conflict::Reused;
    }
    match (record.state, &record.response) {
        (RecordState::Completed, Some(stored)) => Conflict::Replay(stored.clone()),
        (RecordState::InProgress, _) if record.locked_until < now_secs => {
            Conflict::Abandoned(Abandoned {
                pk: record.pk.clone(),
                token: record.token.clone(),
                resource: record.resource.clone(),
            })
        }
        _ => Conflict::InProgress {
            retry_after_secs: (record.locked_until - now_secs).clamp(1, LOCK_TIMEOUT_SECS),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: RecordState, locked_until: i64, expires_at: i64) -> Record {
        Record {
            pk: "k".into(),
            fingerprint: "fp".into(),
            state,
            locked_until,
            expires_at,
            token: "t1".into(),
            resource: Some("p1".into()),
            response: (state == RecordState::Completed).then(|| StoredResponse {
                status: 201,
                body: "{}".into(),
                location: None,
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = 1_000;
        let done = record(RecordState::Completed, now - 10, now + 100);
        assert!(matches!(decide(&done, "fp", now), Conflict::Replay(r) if r.status == 201));
        assert_eq!(decide(&done, "other", now), Conflict::Reused);
        let running = record(RecordState::InProgress, now + 30, now + 100);
        assert_eq!(
            decide(&running, "fp", now),
            Conflict::InProgress {
                retry_after_secs: 30
            }
        );
        assert_eq!(decide(&running, "other", now), Conflict::Reused);
        let dead = record(RecordState::InProgress, now - 1, now + 100);
        let Conflict::Abandoned(abandoned) = decide(&dead, "fp", now) else {
            panic!("a dead holder's lock is abandoned");
        };
        assert_eq!(abandoned.resource(), Some("p1"));
        // A different request never takes over, dead holder or not.
        assert_eq!(decide(&dead, "other", now), Conflict::Reused);
        let expired = record(RecordState::Completed, now - 10, now - 1);
        assert_eq!(decide(&expired, "other", now), Conflict::Gone);
    }

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace() {
        let key = crate::master_key::MasterKey::from_bytes(vec![7; 32]).derive("idempotency");
        let fingerprint =
            |m: &str, p: &str, b: &serde_json::Value| super::fingerprint(&key, m, p, b);
        let a: serde_json::Value =
            serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"d":3,"c":2},"a":1}"#).unwrap();
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a": 2, "b": {"c": 2, "d": 3}}"#).unwrap();
        assert_eq!(
            fingerprint("POST", "/payments", &a),
            fingerprint("POST", "/payments", &b)
        );
        assert_ne!(
            fingerprint("POST", "/payments", &a),
            fingerprint("POST", "/payments", &c)
        );
        assert_ne!(
            fingerprint("POST", "/payments", &a),
            fingerprint("POST", "/refunds", &a)
        );
    }

    #[test]
    fn key_header_rules() {
        let with = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(HEADER, HeaderValue::from_str(v).unwrap());
            IdempotencyKey::from_headers(&h)
        };
        assert!(with("3f0c-abc").is_ok());
        assert!(with(&"k".repeat(255)).is_ok());
        assert_eq!(
            with(&"k".repeat(256)).unwrap_err().slug(),
            "invalid-idempotency-key"
        );
        assert_eq!(with("").unwrap_err().slug(), "invalid-idempotency-key");
        assert_eq!(
            with("tab\there").unwrap_err().slug(),
            "invalid-idempotency-key"
        );
        assert_eq!(
            IdempotencyKey::from_headers(&http::HeaderMap::new())
                .unwrap_err()
                .slug(),
            "idempotency-key-required"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn from_bytes(bytes: &[u8]) -> Option<Result<IdempotencyKey, Problem>> {
            let value = HeaderValue::from_bytes(bytes).ok()?;
            let mut h = http::HeaderMap::new();
            h.insert(HEADER, value);
            Some(IdempotencyKey::from_headers(&h))
        }

        proptest! {
            #[test]
            fn printable_ascii_keys_of_1_to_255_are_kept_as_sent(k in "[ -~]{1,255}") {
                let key = from_bytes(k.as_bytes()).unwrap().unwrap();
                prop_assert_eq!(key.as_str(), k.as_str());
            }

            /// Every header value HTTP can carry is either a printable ASCII key of
            /// 1–255 characters, or refused as `invalid-idempotency-key`; never a panic.
            #[test]
            fn any_header_value_is_a_valid_key_or_refused(
                bytes in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..300),
                    proptest::collection::vec(
                        prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
                        0..300,
                    ),
                    "[ -~]{256,300}".prop_map(String::into_bytes),
                ],
            ) {
                let Some(result) = from_bytes(&bytes) else {
                    return Ok(());
                };
                let valid = (1..=255).contains(&bytes.len())
                    && bytes.iter().all(|b| (0x20..0x7f).contains(b));
                match result {
                    Ok(key) => {
                        prop_assert!(valid);
                        prop_assert_eq!(key.as_str().as_bytes(), &bytes[..]);
                    }
                    Err(p) => {
                        prop_assert!(!valid);
                        prop_assert_eq!(p.slug(), "invalid-idempotency-key");
                        prop_assert_eq!(p.status, 400);
                    }
                }
            }
        }
    }
}
