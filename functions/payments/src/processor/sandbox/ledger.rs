//! The sandbox's ledger: one DynamoDB item per charge attempt and refund, so tests can
//! reconcile and count what the "gateway" did. Never a card number, CVC or payer email.

use std::collections::HashMap;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::{n, s};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{Currency, Money};
use crate::processor::ProcessorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Charge,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::Refund => "refund",
        }
    }
}

/// One thing the sandbox did. Holds no card number, CVC or payer email by construction:
/// none of its fields can carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The sandbox's reference for the charge or refund (`sbx_ch_…`, `sbx_re_…`).
    pub reference: String,
    pub kind: EntryKind,
    pub processor: String,
    pub payment_id: String,
    pub idempotency_key: String,
    pub amount: Money,
    /// `succeeded`, `failed`, `requires_action`; after confirm or cancel, `succeeded` or
    /// `canceled`.
    pub outcome: String,
    pub failure_code: Option<String>,
    /// For a refund: the charge it refunds.
    pub charge_reference: Option<String>,
    /// RFC 3339, millisecond precision.
    pub at: String,
}

// Attribute names, in one place.
const PK: &str = "pk";
const KIND: &str = "kind";
const PROCESSOR: &str = "processor";
const PAYMENT_ID: &str = "payment_id";
const IDEMPOTENCY_KEY: &str = "idempotency_key";
const AMOUNT: &str = "amount";
const CURRENCY: &str = "currency";
const OUTCOME: &str = "outcome";
const FAILURE_CODE: &str = "failure_code";
const CHARGE_REFERENCE: &str = "charge_reference";
const AT: &str = "at";

impl LedgerEntry {
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (PK.to_owned(), s(&self.reference)),
            (KIND.to_owned(), s(self.kind.as_str())),
            (PROCESSOR.to_owned(), s(&self.processor)),
            (PAYMENT_ID.to_owned(), s(&self.payment_id)),
            (IDEMPOTENCY_KEY.to_owned(), s(&self.idempotency_key)),
            (AMOUNT.to_owned(), n(self.amount.minor)),
            (CURRENCY.to_owned(), s(self.amount.currency.code())),
            (OUTCOME.to_owned(), s(&self.outcome)),
            (AT.to_owned(), s(&self.at)),
        ]);
        if let Some(code) = &self.failure_code {
            item.insert(FAILURE_CODE.to_owned(), s(code));
        }
        if let Some(charge) = &self.charge_reference {
            item.insert(CHARGE_REFERENCE.to_owned(), s(charge));
        }
        item
    }

    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, ProcessorError> {
        let text = |name: &str| -> Result<String, ProcessorError> {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| ProcessorError::Ledger(format!("item without `{name}`")))
        };
        let optional = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let kind = match text(KIND)?.as_str() {
            "charge" => EntryKind::Charge,
            "refund" => EntryKind::Refund,
            other => return Err(ProcessorError::Ledger(format!("unknown kind `{other}`"))),
        };
        let minor: i64 = item
            .get(AMOUNT)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ProcessorError::Ledger("item without a numeric `amount`".into()))?;
        let currency =
            Currency::parse(&text(CURRENCY)?).map_err(|e| ProcessorError::Ledger(e.to_string()))?;
        Ok(Self {
            reference: text(PK)?,
            kind,
            processor: text(PROCESSOR)?,
            payment_id: text(PAYMENT_ID)?,
            idempotency_key: text(IDEMPOTENCY_KEY)?,
            amount: Money { minor, currency },
            outcome: text(OUTCOME)?,
            failure_code: optional(FAILURE_CODE),
            charge_reference: optional(CHARGE_REFERENCE),
            at: text(AT)?,
        })
    }
}

/// The sandbox's own record of what it did, in the table `SANDBOX_LEDGER_TABLE`:
/// key `pk` (S, the reference), GSI [`Ledger::BY_PAYMENT`] on `payment_id` (S) and
/// `at` (S), projecting all attributes.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Ledger {
    pub const TABLE_VAR: &str = "SANDBOX_LEDGER_TABLE";
    pub const BY_PAYMENT: &str = "by_payment";

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_env(client: aws_sdk_dynamodb::Client) -> Result<Self, ConfigError> {
        Ok(Self::new(client, config::required(Self::TABLE_VAR)?))
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes one entry; a reference is never written twice: `false` when it already
    /// was (a repeated request).
    pub async fn record(&self, entry: &LedgerEntry) -> Result<bool, ProcessorError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry.to_item()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        applied(result)
    }

    /// The entry with this reference (a consistent read).
    pub async fn get(&self, reference: &str) -> Result<Option<LedgerEntry>, ProcessorError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(reference))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ProcessorError::Ledger(DisplayErrorContext(e).to_string()))?;
        out.item.as_ref().map(LedgerEntry::from_item).transpose()
    }

    /// Moves a charge waiting for action to `outcome`: `false` when it is not waiting.
    pub(super) async fn settle(
        &self,
        reference: &str,
        outcome: &str,
    ) -> Result<bool, ProcessorError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(reference))
            .update_expression("SET #outcome = :to")
            .condition_expression("#kind = :charge AND #outcome = :waiting")
            .expression_attribute_names("#outcome", OUTCOME)
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_values(":to", s(outcome))
            .expression_attribute_values(":charge", s("charge"))
            .expression_attribute_values(":waiting", s("requires_action"))
            .send()
            .await;
        applied(result)
    }

    /// Every entry for a payment, oldest first.
    pub async fn entries(&self, payment_id: &str) -> Result<Vec<LedgerEntry>, ProcessorError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(Self::BY_PAYMENT)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", PAYMENT_ID)
                .expression_attribute_values(":p", s(payment_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| ProcessorError::Ledger(DisplayErrorContext(e).to_string()))?;
            for item in page.items() {
                entries.push(LedgerEntry::from_item(item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(entries);
            }
        }
    }

    /// How many charges (of any outcome) the sandbox made for a payment.
    pub async fn count_charges(&self, payment_id: &str) -> Result<usize, ProcessorError> {
        Ok(self
            .entries(payment_id)
            .await?
            .iter()
            .filter(|e| e.kind == EntryKind::Charge)
            .count())
    }
}

/// Whether a conditional write applied: `false` when its condition failed.
fn applied<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<bool, ProcessorError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(ProcessorError::Ledger(DisplayErrorContext(e).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_items_round_trip_and_hold_no_secrets() {
        let entry = LedgerEntry {
            reference: "sbx_ch_1".into(),
            kind: EntryKind::Charge,
            processor: super::super::CARD_NAME.into(),
            payment_id: "pay_1".into(),
            idempotency_key: "key-1".into(),
            amount: Money::new(1000, Currency::parse("USD").unwrap()).unwrap(),
            outcome: "failed".into(),
            failure_code: Some("card_declined".into()),
            charge_reference: None,
            at: "2026-11-24T23:44:13.123Z".into(),
        };
        let item = entry.to_item();
        assert_eq!(LedgerEntry::from_item(&item).unwrap(), entry);
        let text = format!("{item:?}");
        assert!(!text.contains("4242") && !text.contains("123\""), "{text}");
    }
}
