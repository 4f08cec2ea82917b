//! The payments service: what the HTTP handlers and the reconciler call. It takes domain
//! values (a parsed payment, a refund request, the caller's idempotency key) and returns
//! domain outcomes; nothing here knows HTTP beyond the answer an idempotent request
//! stores for its replays.

use aloft_shared::FieldError;
use aloft_shared::idempotency::{Conflict, IdempotencyKey, StoredResponse};
use aloft_shared::master_key::{DerivedKey, LazyKey};
use serde::Serialize;
use std::sync::Arc;

use crate::domain::{Payment, PaymentStatus, Refund, RefundRefused};
use crate::processor::{Processor, ProcessorRegistry};
use crate::store::{PaymentStore, PaymentStoreError};

pub const CREATE_OPERATION: &str = "payments.create";
pub const REFUND_OPERATION: &str = "payments.refund";

/// Everything the payment flows need, built once per cold start.
pub struct Payments {
    pub store: PaymentStore,
    pub processors: ProcessorRegistry,
    /// Keys the card fingerprint (HMAC of the number), so the same card is recognisable
    /// without the number ever being stored. Derived on first use (see [`derived`]).
    pub fingerprint_key: LazyKey,
    /// Keys idempotency fingerprints and the keys passed to gateways.
    pub idempotency_key: LazyKey,
}

/// A key of [`Payments`], derived from the master key on its first use, so a cold start
/// reads no secret. A secret that cannot be read is our fault (a 500), and comes before
/// any write.
pub async fn derived(key: &LazyKey) -> Result<&DerivedKey, PaymentError> {
    key.get()
        .await
        .map_err(|e| PaymentError::Internal(e.to_string()))
}

/// Who asks, with which key, for which request: what makes a write idempotent.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's id: idempotency keys are scoped to it.
    pub key_id: String,
    pub idempotency_key: IdempotencyKey,
    /// [`aloft_shared::idempotency::fingerprint`] of the request.
    pub fingerprint: String,
}

/// How an idempotent request ended.
#[derive(Debug)]
pub enum Idempotent<T> {
    /// This request's outcome (first run, or resumed after its first holder died), with
    /// the answer stored for its replays.
    Done(T, StoredResponse),
    /// An earlier request with this key decides the answer (replay, in progress, reused).
    Earlier(Conflict),
}

/// Why a payment operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("no payment with id {0}")]
    NotFound(String),
    #[error("a {} payment cannot be {action}", status.as_str())]
    WrongState {
        action: &'static str,
        status: PaymentStatus,
    },
    #[error(transparent)]
    Refused(RefundRefused),
    /// The processor could not be asked; nothing changed.
    #[error("the processor could not {action}; nothing changed")]
    ProcessorUnavailable { action: &'static str },
    #[error("the processor refused to cancel: {0}")]
    CancelRefused(String),
    /// The payment kept changing while this request ran.
    #[error("payment changed concurrently")]
    Changed,
    /// Something only an operator can fix (logged where it happened).
    #[error("internal: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] PaymentStoreError),
}

impl From<aloft_shared::dynamo::StoreError> for PaymentError {
    fn from(e: aloft_shared::dynamo::StoreError) -> Self {
        Self::Store(e.into())
    }
}

/// A payment as the API shows it, with its refunds.
#[derive(Debug, Serialize)]
pub struct PaymentView<'a> {
    #[serde(flatten)]
    pub payment: &'a Payment,
    pub refunds: &'a [Refund],
}

/// The 201 a create or refund answers (and replays).
pub fn created(body: &impl Serialize, location: String) -> Result<StoredResponse, PaymentError> {
    let body = serde_json::to_string(body)
        .map_err(|e| PaymentError::Internal(format!("answer serialisation: {e}")))?;
    Ok(StoredResponse {
        status: 201,
        body,
        location: Some(location),
    })
}

impl Payments {
    /// The key a gateway sees for a request: the same for every retry of one
    /// `Idempotency-Key` from one API key (so a retry after a lost answer cannot charge
    /// twice at the gateway), unique across API keys, and 64 characters whatever the
    /// caller sent.
    pub async fn gateway_key(
        &self,
        caller: &Caller,
        operation: &str,
    ) -> Result<String, PaymentError> {
        Ok(gateway_key(
            derived(&self.idempotency_key).await?,
            &caller.key_id,
            operation,
            &caller.idempotency_key,
        ))
    }

    /// The processor a stored payment names.
    pub fn processor_of(&self, payment: &Payment) -> Result<Arc<dyn Processor>, PaymentError> {
        processor_of(&self.processors, payment)
    }

    /// After an idempotency key turned out to be taken: what holds it.
    pub async fn conflict(
        &self,
        caller: &Caller,
        operation: &str,
    ) -> Result<Conflict, PaymentError> {
        Ok(self
            .store
            .idempotency
            .conflict(
                &caller.key_id,
                operation,
                &caller.idempotency_key,
                &caller.fingerprint,
                aloft_shared::clock::now().unix_timestamp(),
            )
            .await?)
    }
}

pub fn processor_of(
    processors: &ProcessorRegistry,
    payment: &Payment,
) -> Result<Arc<dyn Processor>, PaymentError> {
    processors.get(&payment.processor).ok_or_else(|| {
        tracing::error!(processor = %payment.processor, "payment's processor is not configured");
        PaymentError::Internal(format!("processor {} is not configured", payment.processor))
    })
}

pub fn gateway_key(
    secret: &DerivedKey,
    caller: &str,
    operation: &str,
    key: &IdempotencyKey,
) -> String {
    secret
        .sign(format!("gateway\n{caller}\n{operation}\n{}", key.as_str()).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_keys_are_stable_per_caller_and_key() {
        let master = aloft_shared::master_key::MasterKey::from_bytes(vec![1; 32]);
        let api_key = master.derive("idempotency");
        let headers = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("idempotency-key", v.parse().unwrap());
            IdempotencyKey::from_headers(&h).unwrap()
        };
        let sign = |caller: &str, key: &IdempotencyKey| {
            gateway_key(&api_key, caller, CREATE_OPERATION, key)
        };
        assert_eq!(sign("a", &headers("k")), sign("a", &headers("k")));
        assert_ne!(sign("a", &headers("k")), sign("b", &headers("k")));
        assert_ne!(sign("a", &headers("k")), sign("a", &headers("l")));
        assert_eq!(sign("a", &headers(&"x".repeat(255))).len(), 64);
    }
}
