//! Test-mode processors: deterministic outcomes chosen by the input, like a gateway's
//! test mode, and a ledger of everything they did so tests can reconcile and count.
//!
//! ## Cards (`sandbox_card`: visa, mastercard, amex in USD, EUR, GBP, JPY)
//!
//! | number | outcome |
//! | --- | --- |
//! | 4242 4242 4242 4242, 5555 5555 5555 4444, 3782 822463 10005 | succeeded |
//! | 4000 0000 0000 0002 | failed `card_declined` |
//! | 4000 0000 0000 9995 | failed `insufficient_funds` |
//! | 4000 0000 0000 0069 | failed `expired_card` |
//! | 4000 0000 0000 0127 | failed `incorrect_cvc` |
//! | 4000 0000 0000 0119 | failed `processing_error`, retryable |
//! | 4000 0000 0000 3220 | requires_action (3-D Secure); confirm → succeeded |
//! | 4000 0000 0000 0259 | succeeded at the gateway, then the answer never comes: the call is held for `SANDBOX_STALL_SECS` (default 45), past the function's timeout |
//! | any other valid card | succeeded |
//!
//! ## PayPal (`sandbox_paypal`: paypal, paypal_credit in USD, EUR, GBP)
//!
//! By the payer email's local part (before `@`; emails arrive lower-cased):
//!
//! | payer email | outcome |
//! | --- | --- |
//! | `approve@…` or containing `+approval` (`ann+approval@example.com`) | requires_action (redirect to approve); confirm → succeeded |
//! | `decline@…` or containing `+declined` | failed `payer_declined` |
//! | `unavailable@…` or containing `+unavailable` | failed `processing_error`, retryable |
//! | anything else | succeeded |
//!
//! Refunds always succeed. Cancel works on a charge waiting for action.
//!
//! Like a real gateway, the sandbox deduplicates by the request's idempotency key: a
//! charge or refund's reference is derived from its key, and a repeat answers the first
//! one's outcome (as it stands now) without charging again. Confirm and cancel are
//! idempotent too, so concurrent confirms of one charge all see it succeed. So the
//! ledger shows a second charge only when a second key was used.
//!
//! ## Ledger
//!
//! With a [`Ledger`], every charge attempt (whatever its outcome) and every refund is one
//! item, written before the outcome is returned: if the write fails the sandbox reports
//! an error, not a charge, so the ledger never misses one. Items hold amounts and ids,
//! never a card number, CVC or payer email.

mod ledger;
mod scenario;

use std::sync::Arc;
use std::time::Duration;

use aloft_shared::config;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

pub use self::ledger::{EntryKind, Ledger, LedgerEntry};
use self::scenario::failure_for;
pub use self::scenario::{Scenario, card_scenario, paypal_scenario};
use super::{
    Adapter, CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, Failure, NextAction,
    ProcessorContext, ProcessorError, RefundOutcome, RefundRequest, SupportedMethod, currencies,
};
use crate::domain::{MethodKind, PaymentMethod};

pub const CARD_NAME: &str = "sandbox_card";
pub const PAYPAL_NAME: &str = "sandbox_paypal";

const CARD_CURRENCIES: &[&str] = &["USD", "EUR", "GBP", "JPY"];
const PAYPAL_CURRENCIES: &[&str] = &["USD", "EUR", "GBP"];

/// Where the sandbox pretends the payer goes to act; `.invalid` never resolves.
const ACTION_BASE: &str = "https://sandbox.aloft.invalid";

/// How long a stalling charge holds its call (`SANDBOX_STALL_SECS`).
const DEFAULT_STALL: Duration = Duration::from_secs(45);

/// A sandbox processor: the card one or the PayPal one. They differ only in their
/// name, their methods and currencies, and which test input picks the outcome.
#[derive(Debug, Clone)]
pub struct Sandbox {
    name: &'static str,
    methods: &'static [MethodKind],
    currencies: &'static [&'static str],
    ledger: Option<Ledger>,
    stall: Duration,
}

impl Sandbox {
    /// The card processor. `None` keeps no ledger (unit tests); deployed and local
    /// stacks always pass one.
    pub fn card(ledger: Option<Ledger>) -> Self {
        Self {
            name: CARD_NAME,
            methods: &[MethodKind::Visa, MethodKind::Mastercard, MethodKind::Amex],
            currencies: CARD_CURRENCIES,
            ledger,
            stall: DEFAULT_STALL,
        }
    }

    /// How long the stalling test card holds its call.
    pub fn with_stall(self, stall: Duration) -> Self {
        Self { stall, ..self }
    }

    /// The PayPal processor; see [`Sandbox::card`] for `ledger`.
    pub fn paypal(ledger: Option<Ledger>) -> Self {
        Self {
            name: PAYPAL_NAME,
            methods: &[MethodKind::Paypal, MethodKind::PaypalCredit],
            currencies: PAYPAL_CURRENCIES,
            ledger,
            stall: DEFAULT_STALL,
        }
    }
}

/// Registered in [`super::REGISTERED`]; reads `SANDBOX_LEDGER_TABLE`.
pub fn build_card(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn super::Processor>, ProcessorError>> {
    Box::pin(async move {
        let ledger = Ledger::from_env(context.dynamodb.clone())?;
        let stall: u64 = config::parsed_or("SANDBOX_STALL_SECS", DEFAULT_STALL.as_secs())?;
        let sandbox = Sandbox::card(Some(ledger)).with_stall(Duration::from_secs(stall));
        Ok(Arc::new(sandbox) as Arc<dyn super::Processor>)
    })
}

/// Registered in [`super::REGISTERED`]; reads `SANDBOX_LEDGER_TABLE`.
pub fn build_paypal(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn super::Processor>, ProcessorError>> {
    Box::pin(async move {
        let ledger = Ledger::from_env(context.dynamodb.clone())?;
        Ok(Arc::new(Sandbox::paypal(Some(ledger))) as Arc<dyn super::Processor>)
    })
}

impl Adapter for Sandbox {
    fn name(&self) -> &str {
        self.name
    }

    fn supported_methods(&self) -> Vec<SupportedMethod> {
        let cur = currencies(self.currencies);
        self.methods
            .iter()
            .map(|m| SupportedMethod::new(*m, &cur))
            .collect()
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProcessorError> {
        let scenario =
            self.methods
                .contains(&request.method.kind())
                .then(|| match &request.method {
                    PaymentMethod::Card { number, .. } => card_scenario(number.expose_digits()),
                    PaymentMethod::Paypal { payer_email, .. } => paypal_scenario(payer_email),
                });
        let (outcome, first) = charge(self.name, self.ledger.as_ref(), request, scenario).await?;
        // The first charge stalls after it is recorded; a repeat answers at once.
        if first && scenario == Some(Scenario::Stall) {
            tokio::time::sleep(self.stall).await;
        }
        Ok(outcome)
    }

    async fn confirm(&self, reference: &str) -> Result<ChargeOutcome, ProcessorError> {
        confirm(self.ledger.as_ref(), reference).await
    }

    async fn cancel(&self, reference: &str) -> Result<CancelOutcome, ProcessorError> {
        cancel(self.ledger.as_ref(), reference).await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProcessorError> {
        refund(self.name, self.ledger.as_ref(), request).await
    }

    async fn lookup(&self, query: &ChargeLookup) -> Result<Option<ChargeOutcome>, ProcessorError> {
        let ledger = self.ledger.as_ref().ok_or_else(|| {
            ProcessorError::Ledger("a sandbox without a ledger cannot look charges up".into())
        })?;
        let reference = reference_for("sbx_ch", &query.idempotency_key);
        let paypal = self.name == PAYPAL_NAME;
        Ok(ledger
            .get(&reference)
            .await?
            .map(|entry| replayed(&entry, paypal)))
    }
}

/// A gateway's reference for the request with this idempotency key: the same key always
/// names the same charge or refund, which is how the sandbox deduplicates.
fn reference_for(prefix: &str, idempotency_key: &str) -> String {
    let digest: String = Sha256::digest(idempotency_key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}_{digest}")
}

fn next_action(paypal: bool, reference: &str) -> NextAction {
    if paypal {
        NextAction::Redirect {
            url: format!("{ACTION_BASE}/paypal/approve/{reference}"),
        }
    } else {
        NextAction::ThreeDSecure {
            url: Some(format!("{ACTION_BASE}/3ds/{reference}")),
        }
    }
}

/// How a recorded charge stands now, as a repeat of its request is answered.
fn replayed(entry: &LedgerEntry, paypal: bool) -> ChargeOutcome {
    let reference = entry.reference.clone();
    match entry.outcome.as_str() {
        "succeeded" => ChargeOutcome::Succeeded { reference },
        "requires_action" => ChargeOutcome::RequiresAction {
            next_action: next_action(paypal, &reference),
            reference,
        },
        "canceled" => ChargeOutcome::failed(Some(reference), failure_for("canceled")),
        _ => ChargeOutcome::failed(
            Some(reference),
            failure_for(entry.failure_code.as_deref().unwrap_or("payment_failed")),
        ),
    }
}

/// `scenario` is `None` when the method is not this processor's (a routing bug upstream).
/// With the outcome, whether this was the key's first charge (not a repeat).
async fn charge(
    processor: &'static str,
    ledger: Option<&Ledger>,
    request: &ChargeRequest,
    scenario: Option<Scenario>,
) -> Result<(ChargeOutcome, bool), ProcessorError> {
    let Some(scenario) = scenario else {
        let failure = Failure::new(
            "method_not_supported",
            format!(
                "{processor} does not take {} payments",
                request.method.kind().as_str()
            ),
            false,
        );
        return Ok((ChargeOutcome::failed(None, failure), true));
    };
    let reference = reference_for("sbx_ch", &request.idempotency_key);
    let paypal = matches!(request.method, PaymentMethod::Paypal { .. });
    let outcome = match scenario {
        Scenario::Succeed | Scenario::Stall => ChargeOutcome::Succeeded {
            reference: reference.clone(),
        },
        Scenario::Fail(code, message, retryable) => ChargeOutcome::failed(
            Some(reference.clone()),
            Failure::new(code, message, retryable),
        ),
        Scenario::RequireAction => ChargeOutcome::RequiresAction {
            reference: reference.clone(),
            next_action: next_action(paypal, &reference),
        },
    };
    if let Some(ledger) = ledger {
        let recorded = ledger
            .record(&LedgerEntry {
                reference: reference.clone(),
                kind: EntryKind::Charge,
                processor: processor.to_owned(),
                payment_id: request.payment_id.clone(),
                idempotency_key: request.idempotency_key.clone(),
                amount: request.amount,
                outcome: outcome.status().as_str().to_owned(),
                failure_code: outcome.failure().map(|f| f.code.clone()),
                charge_reference: None,
                at: aloft_shared::clock::rfc3339(aloft_shared::clock::now()),
            })
            .await?;
        if !recorded {
            // A repeat of a request the sandbox already took: its first outcome, as now.
            let entry = ledger
                .get(&reference)
                .await?
                .ok_or_else(|| ProcessorError::Ledger(format!("{reference} vanished")))?;
            tracing::info!(processor, reference, "sandbox charge repeated");
            return Ok((replayed(&entry, paypal), false));
        }
    }
    tracing::info!(
        processor,
        payment_id = %request.payment_id,
        reference,
        outcome = outcome.status().as_str(),
        "sandbox charge"
    );
    Ok((outcome, true))
}

/// Completes a charge waiting for its payer. Idempotent: a charge that already
/// succeeded (a concurrent confirm won) answers succeeded again.
async fn confirm(
    ledger: Option<&Ledger>,
    reference: &str,
) -> Result<ChargeOutcome, ProcessorError> {
    let succeeded = ChargeOutcome::Succeeded {
        reference: reference.to_owned(),
    };
    let Some(ledger) = ledger else {
        return Ok(succeeded);
    };
    if ledger.settle(reference, "succeeded").await? {
        return Ok(succeeded);
    }
    match ledger.get(reference).await? {
        Some(entry) if entry.kind == EntryKind::Charge && entry.outcome != "requires_action" => {
            Ok(replayed(&entry, false))
        }
        _ => Err(ProcessorError::UnknownReference(reference.to_owned())),
    }
}

async fn cancel(ledger: Option<&Ledger>, reference: &str) -> Result<CancelOutcome, ProcessorError> {
    let Some(ledger) = ledger else {
        return Ok(CancelOutcome::Canceled);
    };
    if ledger.settle(reference, "canceled").await? {
        return Ok(CancelOutcome::Canceled);
    }
    match ledger.get(reference).await? {
        Some(entry) if entry.outcome == "canceled" => Ok(CancelOutcome::Canceled),
        Some(entry) if entry.kind == EntryKind::Charge => Ok(CancelOutcome::Failed {
            failure: Failure::new(
                "charge_not_cancelable",
                format!("the charge is already {}", entry.outcome),
                false,
            ),
        }),
        _ => Err(ProcessorError::UnknownReference(reference.to_owned())),
    }
}

async fn refund(
    processor: &'static str,
    ledger: Option<&Ledger>,
    request: &RefundRequest,
) -> Result<RefundOutcome, ProcessorError> {
    let reference = reference_for("sbx_re", &request.idempotency_key);
    if let Some(ledger) = ledger {
        // A repeat of the same refund (same key) records nothing new.
        ledger
            .record(&LedgerEntry {
                reference: reference.clone(),
                kind: EntryKind::Refund,
                processor: processor.to_owned(),
                payment_id: request.payment_id.clone(),
                idempotency_key: request.idempotency_key.clone(),
                amount: request.amount,
                outcome: "succeeded".to_owned(),
                failure_code: None,
                charge_reference: Some(request.charge_reference.clone()),
                at: aloft_shared::clock::rfc3339(aloft_shared::clock::now()),
            })
            .await?;
    }
    tracing::info!(processor, payment_id = %request.payment_id, reference, "sandbox refund");
    Ok(RefundOutcome::Succeeded { reference })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Brand, CardNumber, Currency, Cvc, Expiry, Money};

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("USD").unwrap()).unwrap()
    }

    fn card(number: &str) -> ChargeRequest {
        let number = CardNumber::parse(number).unwrap();
        let cvc = if number.brand() == Brand::Amex {
            "1234"
        } else {
            "123"
        };
        ChargeRequest {
            payment_id: "pay_1".into(),
            idempotency_key: "key-1".into(),
            amount: usd(1000),
            method: PaymentMethod::Card {
                cvc: Cvc::parse(cvc, number.brand()).unwrap(),
                number,
                expiry: Expiry {
                    month: 12,
                    year: 2030,
                },
            },
            description: None,
        }
    }

    fn paypal(kind: MethodKind, email: &str) -> ChargeRequest {
        ChargeRequest {
            method: PaymentMethod::Paypal {
                kind,
                payer_email: email.into(),
            },
            ..card("4242424242424242")
        }
    }

    async fn charge_card(number: &str) -> ChargeOutcome {
        Sandbox::card(None).charge(&card(number)).await.unwrap()
    }

    /// `(status, failure code, retryable)` of an outcome, for compact tables.
    fn summary(o: &ChargeOutcome) -> (&'static str, Option<String>, Option<bool>) {
        (
            o.status().as_str(),
            o.failure().map(|f| f.code.clone()),
            o.failure().map(|f| f.retryable),
        )
    }

    #[tokio::test]
    async fn every_test_card_has_its_outcome() {
        let ok = ("succeeded", None, None);
        let fail = |code: &str, retryable| ("failed", Some(code.to_owned()), Some(retryable));
        let cases = [
            ("4242 4242 4242 4242", ok.clone()),
            ("5555 5555 5555 4444", ok.clone()),
            ("3782 822463 10005", ok.clone()),
            ("4000 0000 0000 0002", fail("card_declined", false)),
            ("4000 0000 0000 9995", fail("insufficient_funds", false)),
            ("4000 0000 0000 0069", fail("expired_card", false)),
            ("4000 0000 0000 0127", fail("incorrect_cvc", false)),
            ("4000 0000 0000 0119", fail("processing_error", true)),
            ("4000 0000 0000 3220", ("requires_action", None, None)),
            // Any other valid card succeeds.
            ("4000 0566 5566 5556", ok.clone()),
            ("2223 0031 2200 3222", ok.clone()),
            ("3714 496353 98431", ok),
        ];
        for (number, want) in cases {
            let outcome = charge_card(number).await;
            assert_eq!(summary(&outcome), want, "{number}");
            assert!(
                outcome
                    .reference()
                    .is_some_and(|r| r.starts_with("sbx_ch_")),
                "{number}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_stall_card_succeeds_then_holds_its_answer() {
        let sandbox = Sandbox::card(None).with_stall(std::time::Duration::from_millis(50));
        let started = std::time::Instant::now();
        let outcome = sandbox.charge(&card("4000000000000259")).await.unwrap();
        assert_eq!(outcome.status().as_str(), "succeeded");
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    }

    #[tokio::test]
    async fn references_derive_from_the_gateway_key() {
        let sandbox = Sandbox::card(None);
        let a = sandbox.charge(&card("4242424242424242")).await.unwrap();
        let b = sandbox.charge(&card("4242424242424242")).await.unwrap();
        assert_eq!(a.reference(), b.reference());
        let mut other = card("4242424242424242");
        other.idempotency_key = "key-2".into();
        let c = sandbox.charge(&other).await.unwrap();
        assert_ne!(a.reference(), c.reference());
    }

    #[tokio::test]
    async fn three_d_secure_waits_then_confirms() {
        let sandbox = Sandbox::card(None);
        let outcome = charge_card("4000000000003220").await;
        let ChargeOutcome::RequiresAction {
            reference,
            next_action: NextAction::ThreeDSecure { url: Some(url) },
        } = &outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(url.ends_with(reference.as_str()));
        assert_eq!(
            sandbox.confirm(reference).await.unwrap(),
            ChargeOutcome::Succeeded {
                reference: reference.clone()
            }
        );
        assert_eq!(
            sandbox.cancel(reference).await.unwrap(),
            CancelOutcome::Canceled
        );
    }

    #[tokio::test]
    async fn every_paypal_case_has_its_outcome() {
        let ok = ("succeeded", None, None);
        let cases = [
            ("buyer@example.com", ok.clone()),
            ("approve@example.com", ("requires_action", None, None)),
            ("ann+approval@example.com", ("requires_action", None, None)),
            (
                "decline@example.com",
                ("failed", Some("payer_declined".into()), Some(false)),
            ),
            (
                "bob+declined@example.com",
                ("failed", Some("payer_declined".into()), Some(false)),
            ),
            (
                "cy+unavailable@example.com",
                ("failed", Some("processing_error".into()), Some(true)),
            ),
            // Only the local part selects: a domain that looks like a case does not.
            ("buyer@approve.example.com", ok),
        ];
        let sandbox = Sandbox::paypal(None);
        for kind in [MethodKind::Paypal, MethodKind::PaypalCredit] {
            for (email, want) in &cases {
                let outcome = sandbox.charge(&paypal(kind, email)).await.unwrap();
                assert_eq!(&summary(&outcome), want, "{email}");
            }
        }
        let outcome = sandbox
            .charge(&paypal(MethodKind::Paypal, "approve@example.com"))
            .await
            .unwrap();
        let Some(NextAction::Redirect { url }) = outcome.next_action() else {
            panic!("{outcome:?}");
        };
        assert!(url.starts_with("https://sandbox.aloft.invalid/paypal/approve/sbx_ch_"));
    }

    #[tokio::test]
    async fn a_method_routed_to_the_wrong_sandbox_fails_plainly() {
        let outcome = Sandbox::paypal(None)
            .charge(&card("4242424242424242"))
            .await
            .unwrap();
        assert_eq!(
            summary(&outcome),
            ("failed", Some("method_not_supported".into()), Some(false))
        );
        let outcome = Sandbox::card(None)
            .charge(&paypal(MethodKind::Paypal, "a@example.com"))
            .await
            .unwrap();
        assert_eq!(outcome.status().as_str(), "failed");
    }

    #[tokio::test]
    async fn refunds_succeed_with_their_own_reference() {
        let outcome = Sandbox::card(None)
            .refund(&RefundRequest {
                payment_id: "pay_1".into(),
                refund_id: "ref_1".into(),
                charge_reference: "sbx_ch_1".into(),
                idempotency_key: "r-1".into(),
                amount: usd(400),
            })
            .await
            .unwrap();
        assert!(
            matches!(&outcome, RefundOutcome::Succeeded { reference } if reference.starts_with("sbx_re_"))
        );
    }

    #[test]
    fn supported_methods_are_as_documented() {
        let card: Vec<_> = Sandbox::card(None)
            .supported_methods()
            .into_iter()
            .map(|m| (m.method.as_str(), m.currencies.len()))
            .collect();
        assert_eq!(card, [("visa", 4), ("mastercard", 4), ("amex", 4)]);
        let pp: Vec<_> = Sandbox::paypal(None)
            .supported_methods()
            .into_iter()
            .map(|m| (m.method.as_str(), m.currencies.len()))
            .collect();
        assert_eq!(pp, [("paypal", 3), ("paypal_credit", 3)]);
    }

    #[test]
    fn a_charge_request_never_shows_its_card() {
        let request = card("4242424242424242");
        let logged = format!("{request:?}");
        assert!(
            !logged.contains("4242424242424242") && !logged.contains("\"123\""),
            "{logged}"
        );
    }
}
