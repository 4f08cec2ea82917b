//! The payments table's key shapes, index names and attribute values derived from a
//! payment: everything else in `store` builds keys through these.

use serde::{Deserialize, Serialize};

use crate::domain::{Payment, PaymentStatus};

pub(super) const PAYMENT_SK: &str = "PAYMENT";
pub(super) const REFUND_PREFIX: &str = "REFUND#";
pub(super) const INDEX_BY_USER: &str = "by-user";
pub(super) const INDEX_BY_USER_STATUS: &str = "by-user-status";
pub(super) const INDEX_OPEN: &str = "open-since";
pub(super) const OPEN_PAYMENT: &str = "payment";
pub(super) const OPEN_REFUND: &str = "refund";
pub(super) const SHARDS: &str = "0123456789abcdef";
pub const EVENT_SOURCE: &str = "aloft.payments";

pub(super) fn payment_pk(id: &str) -> String {
    format!("PAY#{id}")
}

/// The `open-since` partition of an open payment or refund of payment `id`.
pub(super) fn open_shard(kind: &str, id: &str) -> String {
    let c = id
        .chars()
        .next()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| SHARDS.contains(*c))
        .unwrap_or('0');
    format!("{kind}#{c}")
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PaymentItem {
    pk: String,
    sk: String,
    user_status: String,
    pub(super) refundable: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gateway_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_since: Option<String>,
    #[serde(flatten)]
    pub(super) payment: Payment,
}

impl PaymentItem {
    /// A new payment: open (`processing`) until its outcome is known.
    pub(super) fn new(p: &Payment, gateway_key: &str) -> Self {
        let open = p.status == PaymentStatus::Processing;
        Self {
            pk: payment_pk(&p.id),
            sk: PAYMENT_SK.into(),
            user_status: user_status(&p.user_id, p.status),
            refundable: 0,
            gateway_key: Some(gateway_key.to_owned()),
            open_shard: open.then(|| open_shard(OPEN_PAYMENT, &p.id)),
            open_since: open.then(|| p.created_at.clone()),
            payment: p.clone(),
        }
    }
}

pub(super) fn user_status(user_id: &str, status: PaymentStatus) -> String {
    format!("{user_id}#{}", status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_items_spread_over_sixteen_shards() {
        assert_eq!(open_shard(OPEN_PAYMENT, "3f2a"), "payment#3");
        assert_eq!(open_shard(OPEN_REFUND, "Abc"), "refund#a");
        assert_eq!(open_shard(OPEN_PAYMENT, "zz"), "payment#0");
        assert_eq!(open_shard(OPEN_PAYMENT, ""), "payment#0");
    }
}
