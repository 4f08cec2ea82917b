//! Reading payments: one payment with its refunds, a user's payments page by page, and
//! what has been open too long (for the reconciler).

use std::collections::HashMap;

use aloft_shared::cursor::Page;
use aloft_shared::dynamo::{StoreError, s};

use super::keys::{
    INDEX_BY_USER, INDEX_BY_USER_STATUS, INDEX_OPEN, OPEN_PAYMENT, OPEN_REFUND, PAYMENT_SK,
    PaymentItem, REFUND_PREFIX, SHARDS, payment_pk, user_status,
};
use super::{PaymentStore, PaymentStoreError, StoredPayment, Stuck, refunds};
use crate::domain::{Payment, PaymentStatus};

impl PaymentStore {
    /// The payment with its refunds (one Query).
    pub async fn get(&self, id: &str) -> Result<Option<StoredPayment>, StoreError> {
        let mut payment = None;
        let mut refunds = Vec::new();
        let mut refund_keys = HashMap::new();
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
                payment = Some(serde_dynamo::from_item::<_, PaymentItem>(item)?);
            } else {
                let r: refunds::RefundItem = serde_dynamo::from_item(item)?;
                if let Some(key) = r.gateway_key {
                    refund_keys.insert(r.refund.id.clone(), key);
                }
                refunds.push(r.refund);
            }
        }
        Ok(payment.map(|p| StoredPayment {
            payment: p.payment,
            refunds,
            refundable: p.refundable,
            gateway_key: p.gateway_key,
            refund_keys,
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

    /// Payments still `processing` and refunds still `pending` since before `cutoff`
    /// (RFC 3339), oldest first per shard, through the sparse `open-since` index.
    pub async fn stuck(&self, cutoff: &str) -> Result<Vec<Stuck>, StoreError> {
        let mut found = Vec::new();
        for kind in [OPEN_PAYMENT, OPEN_REFUND] {
            for shard in SHARDS.chars() {
                let mut items = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(INDEX_OPEN)
                    .key_condition_expression("open_shard = :shard AND open_since < :cutoff")
                    .expression_attribute_values(":shard", s(format!("{kind}#{shard}")))
                    .expression_attribute_values(":cutoff", s(cutoff))
                    .into_paginator()
                    .items()
                    .send();
                while let Some(item) = items.next().await {
                    let item = item?;
                    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                    let (Some(pk), Some(sk)) = (text("pk"), text("sk")) else {
                        continue;
                    };
                    let Some(payment_id) = pk.strip_prefix("PAY#").map(str::to_owned) else {
                        continue;
                    };
                    match sk.strip_prefix(REFUND_PREFIX) {
                        None => found.push(Stuck::Payment { payment_id }),
                        Some(rest) => found.push(Stuck::Refund {
                            payment_id,
                            refund_id: rest.rsplit('#').next().unwrap_or_default().to_owned(),
                        }),
                    }
                }
            }
        }
        Ok(found)
    }
}
