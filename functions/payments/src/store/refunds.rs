//! Refund items: reserved with the idempotency lock, then settled exactly once. Every
//! settling write is conditioned on the refund still being `pending`, so the request, a
//! takeover of it and the reconciler can race without refunding or releasing twice.

use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::outbox::Envelope;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::{
    EVENT_SOURCE, OPEN_REFUND, PAYMENT_SK, REFUND_PREFIX, open_shard, payment_pk, user_status,
};
use super::{PaymentStore, PaymentStoreError};
use crate::domain::{Payment, PaymentStatus, Refund, RefundStatus};

/// A refund's final write retries when a concurrent refund moved `amount_refunded`.
const REFUND_FINISH_ATTEMPTS: usize = 50;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RefundItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gateway_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_since: Option<String>,
    #[serde(flatten)]
    pub(super) refund: Refund,
}

impl PaymentStore {
    /// Settles a pending refund: its status, reference and failure (absent ones keep the
    /// item's); no longer open unless still pending. Only a pending refund is settled.
    fn settle_refund(&self, refund: &Refund) -> Result<TransactWriteItem, StoreError> {
        let mut set = vec!["#status = :status", "updated_at = :at"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(payment_pk(&refund.payment_id)))
            .key(
                "sk",
                s(format!(
                    "{REFUND_PREFIX}{}#{}",
                    refund.created_at, refund.id
                )),
            )
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":status", s(status_str(refund.status)))
            .expression_attribute_values(":at", s(&refund.updated_at));
        if let Some(reference) = &refund.processor_reference {
            set.push("processor_reference = :reference");
            update = update.expression_attribute_values(":reference", s(reference));
        }
        if let Some(failure) = &refund.failure {
            set.push("failure = :failure");
            update = update.expression_attribute_values(
                ":failure",
                serde_dynamo::to_attribute_value(failure)?,
            );
        }
        let mut expression = format!("SET {}", set.join(", "));
        if refund.status != RefundStatus::Pending {
            expression.push_str(" REMOVE open_shard, open_since");
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|e| StoreError::new("refund settle", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Takes the idempotency key, records the `pending` refund (with the key it is sent
    /// to the gateway with) and reserves its amount from what is left to refund: only if
    /// `refundable` is still what was read and the payment still refundable. One
    /// transaction.
    pub async fn reserve_refund(
        &self,
        take: TransactWriteItem,
        refund: &Refund,
        refundable_read: i64,
        gateway_key: &str,
    ) -> Result<(), PaymentStoreError> {
        let item = RefundItem {
            pk: payment_pk(&refund.payment_id),
            sk: format!("{REFUND_PREFIX}{}#{}", refund.created_at, refund.id),
            gateway_key: Some(gateway_key.to_owned()),
            open_shard: Some(open_shard(OPEN_REFUND, &refund.payment_id)),
            open_since: Some(refund.created_at.clone()),
            refund: refund.clone(),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(item).map_err(StoreError::from)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("refund put", e))?;
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
        let items = vec![
            take,
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(reserve).build(),
        ];
        self.transact(items, &[], |i| {
            (i == 0).then_some(PaymentStoreError::KeyTaken)
        })
        .await
    }

    /// Records a refund the processor accepted: the refund, the payment's refunded total
    /// and status (partially refunded or refunded), the idempotent answer when a request
    /// waits for it, and the `payment.refunded` event. Retries when a concurrent refund
    /// moved the total; `RefundSettled` when someone else settled this refund first.
    pub async fn refund_succeeded(
        &self,
        refund: &Refund,
        complete: Option<TransactWriteItem>,
    ) -> Result<Payment, PaymentStoreError> {
        for _ in 0..REFUND_FINISH_ATTEMPTS {
            let current = self
                .get(&refund.payment_id)
                .await?
                .ok_or_else(|| StoreError::internal("refunded payment vanished"))?;
            let mut next = current.payment.clone();
            next.amount_refunded += refund.amount;
            next.status = PaymentStatus::after_refund(next.amount_refunded, next.amount);
            next.updated_at = refund.updated_at.clone();
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
                .expression_attribute_values(":at", s(&next.updated_at))
                .build()
                .map_err(|e| StoreError::new("refund total", e))?;
            let event = Envelope::new(
                "payment.refunded",
                EVENT_SOURCE,
                serde_json::json!({"payment": &next, "refund": refund}),
            )?;
            let mut items = vec![
                TransactWriteItem::builder().update(update).build(),
                self.settle_refund(refund)?,
            ];
            let answers = complete.is_some();
            items.extend(complete.clone());
            let failed = |i| match i {
                1 => Some(PaymentStoreError::RefundSettled),
                2 if answers => Some(PaymentStoreError::LockLost),
                _ => None,
            };
            match self.transact(items, &[event], failed).await {
                Ok(()) => return Ok(next),
                Err(PaymentStoreError::Changed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PaymentStoreError::Changed)
    }

    /// Records a refund whose outcome the processor has not confirmed: it stays
    /// `pending` and keeps its reservation, so nothing can be refunded twice meanwhile;
    /// the reconciler settles it.
    pub async fn refund_uncertain(
        &self,
        refund: &Refund,
        complete: TransactWriteItem,
    ) -> Result<(), PaymentStoreError> {
        let items = vec![self.settle_refund(refund)?, complete];
        self.transact(items, &[], |i| match i {
            0 => Some(PaymentStoreError::RefundSettled),
            _ => Some(PaymentStoreError::LockLost),
        })
        .await
    }

    /// Records a refund the processor refused, and gives its amount back: once, since
    /// only a pending refund is settled.
    pub async fn refund_failed(
        &self,
        refund: &Refund,
        complete: Option<TransactWriteItem>,
    ) -> Result<(), PaymentStoreError> {
        let release = Update::builder()
            .table_name(&self.table)
            .key("pk", s(payment_pk(&refund.payment_id)))
            .key("sk", s(PAYMENT_SK))
            .update_expression("ADD refundable :amount")
            .expression_attribute_values(":amount", n(refund.amount))
            .build()
            .map_err(|e| StoreError::new("refund release", e))?;
        let answers = complete.is_some();
        let mut items = vec![
            self.settle_refund(refund)?,
            TransactWriteItem::builder().update(release).build(),
        ];
        items.extend(complete);
        self.transact(items, &[], |i| match i {
            0 => Some(PaymentStoreError::RefundSettled),
            2 if answers => Some(PaymentStoreError::LockLost),
            _ => None,
        })
        .await
    }
}

fn status_str(status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Pending => "pending",
        RefundStatus::Succeeded => "succeeded",
        RefundStatus::Failed => "failed",
    }
}
