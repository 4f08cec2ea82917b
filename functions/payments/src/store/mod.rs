//! Payments in DynamoDB. The only module that knows the table's key shapes.
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | the payment | `PAY#<id>` | `PAYMENT` |
//! | a refund of it | `PAY#<id>` | `REFUND#<created_at>#<refund id>` |
//!
//! so reading a payment with its refunds is one Query. Payments carry `user_id` and
//! `user_status` for the `by-user` and `by-user-status` indexes (refunds don't: the
//! indexes stay sparse), and `refundable` (minor units not yet refunded or being
//! refunded): a refund reserves its amount with a conditional write on it, so concurrent
//! refunds can never together exceed the payment.
//!
//! A payment while `processing` and a refund while `pending` also carry `open_shard` and
//! `open_since`, the keys of the sparse `open-since` index: the reconciler finds what is
//! stuck there (16 shards by the id's first character keep the partition cool), never by
//! a Scan. Settling removes them. Both items keep the `gateway_key` their request was sent
//! with, so the reconciler asks the gateway with the same key.
//!
//! A new payment costs one transaction to start (idempotency lock + user check + the
//! `processing` payment) and one to finish (outcome + idempotency answer + outbox event).

mod keys;
mod queries;
mod refunds;

use std::collections::HashMap;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, CursorError};
use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::idempotency::IdempotencyStore;
use aloft_shared::outbox::{Envelope, Outbox, TransactError};
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};

pub use self::keys::EVENT_SOURCE;
use self::keys::{PAYMENT_SK, PaymentItem, payment_pk, user_status};
use crate::domain::{Payment, PaymentStatus, Refund};

/// A payment as stored: with its refunds, what is left to refund, and the keys its
/// requests were sent to the gateway with.
#[derive(Debug, Clone)]
pub struct StoredPayment {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
    pub refundable: i64,
    pub gateway_key: Option<String>,
    /// Refund id → the key its refund was sent with.
    pub refund_keys: HashMap<String, String>,
}

/// Something the reconciler should look at: open longer than it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    Payment {
        payment_id: String,
    },
    Refund {
        payment_id: String,
        refund_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentStoreError {
    /// The idempotency key is taken; read what holds it.
    #[error("idempotency key taken")]
    KeyTaken,
    /// The payment is no longer in the state the write expected.
    #[error("payment changed concurrently")]
    Changed,
    /// Another request took this one's idempotency lock over: it no longer answers.
    #[error("idempotency lock taken over")]
    LockLost,
    /// The refund was settled by someone else (the reconciler, a resumed request).
    #[error("refund already settled")]
    RefundSettled,
    /// The payment names a user that does not exist.
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct PaymentStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    users_table: String,
    pub idempotency: IdempotencyStore,
    outbox: Outbox,
    cursors: CursorCodec,
}

/// The tables a payment store works on.
#[derive(Debug, Clone)]
pub struct PaymentTables {
    pub payments: String,
    pub users: String,
    pub idempotency: String,
}

impl PaymentStore {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        tables: PaymentTables,
        outbox: Outbox,
        cursors: CursorCodec,
    ) -> Self {
        Self {
            idempotency: IdempotencyStore::new(client.clone(), tables.idempotency),
            table: tables.payments,
            users_table: tables.users,
            outbox,
            client,
            cursors,
        }
    }

    /// Reads `PAYMENTS_TABLE`, `USERS_TABLE`, `IDEMPOTENCY_TABLE` and `OUTBOX_TABLE`.
    pub fn from_env(
        sdk: &aloft_shared::aws::SdkConfig,
        cursors: CursorCodec,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(sdk),
            PaymentTables {
                payments: config::required("PAYMENTS_TABLE")?,
                users: config::required("USERS_TABLE")?,
                idempotency: config::required("IDEMPOTENCY_TABLE")?,
            },
            Outbox::from_env(sdk)?,
            cursors,
        ))
    }

    /// The transaction item that checks the payment's user exists (read-only access to
    /// the users table): part of the first write, so it costs no request of its own.
    fn user_exists(&self, user_id: &str) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.users_table)
            .key("pk", s(aloft_shared::keys::user_pk(user_id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("user check", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Moves the payment from `from` to `next`'s state (status, reference, failure, next
    /// action), leaving what the move does not own (its gateway key, refund totals) alone.
    fn transition(
        &self,
        next: &Payment,
        from: PaymentStatus,
    ) -> Result<TransactWriteItem, StoreError> {
        let refundable = if next.status == PaymentStatus::Succeeded {
            next.amount
        } else {
            0
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(payment_pk(&next.id)))
            .key("sk", s(PAYMENT_SK))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":status", s(next.status.as_str()))
            .expression_attribute_values(":us", s(user_status(&next.user_id, next.status)))
            .expression_attribute_values(":at", s(&next.updated_at))
            .expression_attribute_values(":refundable", n(refundable));
        let mut set = vec![
            "#status = :status".to_owned(),
            "user_status = :us".to_owned(),
            "updated_at = :at".to_owned(),
            "refundable = :refundable".to_owned(),
        ];
        let mut remove = Vec::new();
        let optional: [(&str, aws_sdk_dynamodb::types::AttributeValue); 3] = [
            (
                "processor_reference",
                serde_dynamo::to_attribute_value(&next.processor_reference)?,
            ),
            ("failure", serde_dynamo::to_attribute_value(&next.failure)?),
            (
                "next_action",
                serde_dynamo::to_attribute_value(&next.next_action)?,
            ),
        ];
        for (name, value) in optional {
            if value.is_null() {
                remove.push(name.to_owned());
            } else {
                set.push(format!("{name} = :{name}"));
                update = update.expression_attribute_values(format!(":{name}"), value);
            }
        }
        if next.status != PaymentStatus::Processing {
            remove.extend(["open_shard".to_owned(), "open_since".to_owned()]);
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|e| StoreError::new("payment transition", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Runs a transaction through the outbox: `items`, then the records of `events`, as
    /// one request. A failed condition on item `i` is `failed_condition(i)` when that
    /// names what it means (the idempotency key taken, no such user); any other failed
    /// condition, or a conflict with a concurrent transaction, means the payment changed
    /// under us: re-read and decide again.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        events: &[Envelope],
        failed_condition: impl Fn(usize) -> Option<PaymentStoreError>,
    ) -> Result<(), PaymentStoreError> {
        let Err(e) = self.outbox.transact(items, events).await else {
            return Ok(());
        };
        if let Some(meaning) = e
            .failed_conditions()
            .into_iter()
            .find_map(&failed_condition)
        {
            return Err(meaning);
        }
        match e {
            TransactError::Cancelled { codes }
                if codes
                    .iter()
                    .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict") =>
            {
                Err(PaymentStoreError::Changed)
            }
            other => Err(StoreError::from(other).into()),
        }
    }

    /// Takes the idempotency key, checks the user exists and stores the `processing`
    /// payment with the key its charge is sent with, atomically: the first of the two
    /// writes a payment costs. A missing user cancels it all, so a refused request leaves
    /// nothing behind.
    pub async fn begin(
        &self,
        take: TransactWriteItem,
        payment: &Payment,
        gateway_key: &str,
    ) -> Result<(), PaymentStoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(
                serde_dynamo::to_item(PaymentItem::new(payment, gateway_key))
                    .map_err(StoreError::from)?,
            ))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("payment put", e))?;
        let items = vec![
            take,
            self.user_exists(&payment.user_id)?,
            TransactWriteItem::builder().put(put).build(),
        ];
        self.transact(items, &[], |i| match i {
            0 => Some(PaymentStoreError::KeyTaken),
            1 => Some(PaymentStoreError::UnknownUser),
            _ => None,
        })
        .await
    }

    /// Moves a payment from `from` to `next`'s state, announcing `event` and, when the
    /// move answers an idempotent request, storing its answer in the same transaction
    /// (`LockLost` when that request no longer holds its key).
    pub async fn finish(
        &self,
        next: &Payment,
        from: PaymentStatus,
        complete: Option<TransactWriteItem>,
        event: Option<&Envelope>,
    ) -> Result<(), PaymentStoreError> {
        // The domain's table decides which moves exist; the condition makes the move
        // atomic. Staying put (an outcome still unknown) is not a move.
        if next.status != from {
            from.transition(next.status)
                .map_err(|e| StoreError::new("payment transition", e))?;
        }
        let answers = complete.is_some();
        let mut items = vec![self.transition(next, from)?];
        items.extend(complete);
        let events: Vec<Envelope> = event.into_iter().cloned().collect();
        self.transact(items, &events, |i| {
            (i == 1 && answers).then_some(PaymentStoreError::LockLost)
        })
        .await
    }

    /// Stores an idempotent request's answer alone (the payment was settled by someone
    /// else, e.g. the reconciler, while the request's first holder was dead).
    pub async fn answer(&self, complete: TransactWriteItem) -> Result<(), PaymentStoreError> {
        self.transact(vec![complete], &[], |_| Some(PaymentStoreError::LockLost))
            .await
    }
}
