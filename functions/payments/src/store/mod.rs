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
//! A new payment costs one transaction to start (idempotency lock + the `processing`
//! payment) and one to finish (outcome + idempotency answer + outbox event).

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, CursorError, Page};
use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::idempotency::{IdempotencyStore, Lock};
use aloft_shared::outbox::{Envelope, Outbox, TransactError};
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use crate::domain::{Payment, PaymentStatus, Refund};

const PAYMENT_SK: &str = "PAYMENT";
const REFUND_PREFIX: &str = "REFUND#";
const INDEX_BY_USER: &str = "by-user";
const INDEX_BY_USER_STATUS: &str = "by-user-status";
pub const EVENT_SOURCE: &str = "aloft.payments";
/// A refund's final write retries when a concurrent refund moved `amount_refunded`.
const REFUND_FINISH_ATTEMPTS: usize = 50;

fn payment_pk(id: &str) -> String {
    format!("PAY#{id}")
}

#[derive(Debug, Serialize, Deserialize)]
struct PaymentItem {
    pk: String,
    sk: String,
    user_status: String,
    refundable: i64,
    #[serde(flatten)]
    payment: Payment,
}

impl PaymentItem {
    fn new(p: &Payment, refundable: i64) -> Self {
        Self {
            pk: payment_pk(&p.id),
            sk: PAYMENT_SK.into(),
            user_status: user_status(&p.user_id, p.status),
            refundable,
            payment: p.clone(),
        }
    }
}

fn user_status(user_id: &str, status: PaymentStatus) -> String {
    format!("{user_id}#{}", status.as_str())
}

#[derive(Debug, Serialize, Deserialize)]
struct RefundItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    refund: Refund,
}

impl From<&Refund> for RefundItem {
    fn from(r: &Refund) -> Self {
        Self {
            pk: payment_pk(&r.payment_id),
            sk: format!("{REFUND_PREFIX}{}#{}", r.created_at, r.id),
            refund: r.clone(),
        }
    }
}

/// A payment as stored: with its refunds and what is left to refund.
#[derive(Debug, Clone)]
pub struct StoredPayment {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
    pub refundable: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentStoreError {
    /// The idempotency key is taken; read what holds it.
    #[error("idempotency key taken")]
    KeyTaken,
    /// The payment is no longer in the state the write expected.
    #[error("payment changed concurrently")]
    Changed,
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

    /// Reads `PAYMENTS_TABLE`, `USERS_TABLE`, `IDEMPOTENCY_TABLE` and the outbox's variables.
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

    fn put_new_payment(&self, p: &Payment) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(PaymentItem::new(p, 0))?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("payment put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn transition(
        &self,
        next: &Payment,
        from: PaymentStatus,
        refundable: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(PaymentItem::new(
                next, refundable,
            ))?))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .build()
            .map_err(|e| StoreError::new("payment transition", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
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

    fn put_refund(
        &self,
        refund: &Refund,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(RefundItem::from(refund))?))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| StoreError::new("refund put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Takes the idempotency key, checks the user exists and stores the `processing`
    /// payment, atomically: the first of the two writes a payment costs. A missing user
    /// cancels it all, so a refused request leaves nothing behind.
    pub async fn begin(
        &self,
        take: TransactWriteItem,
        payment: &Payment,
    ) -> Result<(), PaymentStoreError> {
        let items = vec![
            take,
            self.user_exists(&payment.user_id)?,
            self.put_new_payment(payment)?,
        ];
        self.transact(items, &[], |i| match i {
            0 => Some(PaymentStoreError::KeyTaken),
            1 => Some(PaymentStoreError::UnknownUser),
            _ => None,
        })
        .await
    }

    /// Moves a payment from `from` to `next`'s state, announcing `event` and, when the
    /// move answers an idempotent request, storing its answer in the same transaction.
    pub async fn finish(
        &self,
        next: &Payment,
        from: PaymentStatus,
        complete: Option<TransactWriteItem>,
        event: Option<&Envelope>,
    ) -> Result<(), PaymentStoreError> {
        // The domain's table decides which moves exist; the condition below makes the
        // move atomic. Staying put (an outcome still unknown) is not a move.
        if next.status != from {
            from.transition(next.status)
                .map_err(|e| StoreError::new("payment transition", e))?;
        }
        let refundable = if next.status == PaymentStatus::Succeeded {
            next.amount
        } else {
            0
        };
        // The payment's condition goes first so `Changed` is reported for it; the
        // idempotency answer is conditioned on still holding the key.
        let mut items = vec![self.transition(next, from, refundable)?];
        items.extend(complete);
        let events: Vec<Envelope> = event.into_iter().cloned().collect();
        self.transact(items, &events, |_| None).await
    }

    /// The payment with its refunds (one Query).
    pub async fn get(&self, id: &str) -> Result<Option<StoredPayment>, StoreError> {
        let mut payment = None;
        let mut refunds = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(payment_pk(id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item?;
            let is_payment = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some(PAYMENT_SK);
            if is_payment {
                let p: PaymentItem = serde_dynamo::from_item(item)?;
                payment = Some((p.payment, p.refundable));
            } else {
                let r: RefundItem = serde_dynamo::from_item(item)?;
                refunds.push(r.refund);
            }
        }
        Ok(payment.map(|(payment, refundable)| StoredPayment {
            payment,
            refunds,
            refundable,
        }))
    }

    /// A user's payments, newest first, optionally in one status.
    pub async fn list(
        &self,
        user_id: &str,
        status: Option<PaymentStatus>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Payment>, PaymentStoreError> {
        let (index, key, value) = match status {
            None => (INDEX_BY_USER, "user_id", user_id.to_owned()),
            Some(st) => (
                INDEX_BY_USER_STATUS,
                "user_status",
                user_status(user_id, st),
            ),
        };
        let scope = format!("{index}#{value}");
        let start = self.cursors.start_key(&scope, cursor)?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from)?;
        let page: Page<PaymentItem> = self.cursors.page(&scope, out)?;
        Ok(page.map(|i| i.payment))
    }

    /// Takes the idempotency key, records the `pending` refund and reserves its amount
    /// from what is left to refund: only if `refundable` is still what was read and the
    /// payment still refundable. One transaction.
    pub async fn reserve_refund(
        &self,
        take: TransactWriteItem,
        refund: &Refund,
        refundable_read: i64,
    ) -> Result<(), PaymentStoreError> {
        let put = self.put_refund(refund, Some("attribute_not_exists(pk)"))?;
        let reserve = Update::builder()
            .table_name(&self.table)
            .key("pk", s(payment_pk(&refund.payment_id)))
            .key("sk", s(PAYMENT_SK))
            .update_expression("SET refundable = :left")
            .condition_expression("refundable = :read AND #status IN (:succeeded, :partial)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":left", n(refundable_read - refund.amount))
            .expression_attribute_values(":read", n(refundable_read))
            .expression_attribute_values(":succeeded", s(PaymentStatus::Succeeded.as_str()))
            .expression_attribute_values(":partial", s(PaymentStatus::PartiallyRefunded.as_str()))
            .build()
            .map_err(|e| StoreError::new("refund reserve", e))?;
        self.transact(
            vec![
                take,
                put,
                TransactWriteItem::builder().update(reserve).build(),
            ],
            &[],
            |i| (i == 0).then_some(PaymentStoreError::KeyTaken),
        )
        .await
    }

    /// Records a refund the processor accepted: the refund, the payment's refunded total
    /// and status (partially refunded or refunded), the idempotent answer and the
    /// `payment.refunded` event. Retries when a concurrent refund moved the total.
    pub async fn refund_succeeded(
        &self,
        refund: &Refund,
        lock: &Lock,
        answer: &aloft_shared::idempotency::StoredResponse,
        updated_at: &str,
    ) -> Result<Payment, PaymentStoreError> {
        for _ in 0..REFUND_FINISH_ATTEMPTS {
            let current = self
                .get(&refund.payment_id)
                .await?
                .ok_or_else(|| StoreError("refunded payment vanished".into()))?;
            let mut next = current.payment.clone();
            next.amount_refunded += refund.amount;
            next.status = PaymentStatus::after_refund(next.amount_refunded, next.amount);
            next.updated_at = updated_at.to_owned();
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(payment_pk(&refund.payment_id)))
                .key("sk", s(PAYMENT_SK))
                .update_expression("SET amount_refunded = :total, #status = :status, user_status = :us, updated_at = :at")
                .condition_expression("amount_refunded = :before")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":total", n(next.amount_refunded))
                .expression_attribute_values(":before", n(current.payment.amount_refunded))
                .expression_attribute_values(":status", s(next.status.as_str()))
                .expression_attribute_values(":us", s(user_status(&next.user_id, next.status)))
                .expression_attribute_values(":at", s(updated_at))
                .build()
                .map_err(|e| StoreError::new("refund total", e))?;
            let event = Envelope::new(
                "payment.refunded",
                EVENT_SOURCE,
                serde_json::json!({"payment": &next, "refund": refund}),
            )?;
            let refund_put = self.put_refund(refund, None)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                refund_put,
                self.idempotency.complete(lock, answer)?,
            ];
            match self.transact(items, &[event], |_| None).await {
                Ok(()) => return Ok(next),
                Err(PaymentStoreError::Changed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PaymentStoreError::Changed)
    }

    /// Records a refund whose outcome the processor has not confirmed: it stays
    /// `pending` and keeps its reservation, so nothing can be refunded twice meanwhile.
    pub async fn refund_uncertain(
        &self,
        refund: &Refund,
        complete: TransactWriteItem,
    ) -> Result<(), PaymentStoreError> {
        let refund_put = self.put_refund(refund, None)?;
        self.transact(vec![refund_put, complete], &[], |_| None)
            .await
    }

    /// Records a refund the processor refused, and gives its amount back.
    pub async fn refund_failed(
        &self,
        refund: &Refund,
        complete: TransactWriteItem,
    ) -> Result<(), PaymentStoreError> {
        let release = Update::builder()
            .table_name(&self.table)
            .key("pk", s(payment_pk(&refund.payment_id)))
            .key("sk", s(PAYMENT_SK))
            .update_expression("ADD refundable :amount")
            .expression_attribute_values(":amount", n(refund.amount))
            .build()
            .map_err(|e| StoreError::new("refund release", e))?;
        let refund_put = self.put_refund(refund, None)?;
        self.transact(
            vec![
                TransactWriteItem::builder().update(release).build(),
                refund_put,
                complete,
            ],
            &[],
            |_| None,
        )
        .await
    }
}
