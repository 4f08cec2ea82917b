//! The reconciler: nothing stays stuck. On a schedule it finds payments still
//! `processing` and refunds still `pending` since before a threshold (the sparse
//! `open-since` index, never a Scan), asks the processor for the truth with the stored
//! reference or the derived gateway key, and settles them with the same conditional
//! writes and events as the API. A payment the gateway provably never received fails as
//! `never_sent`; one the gateway still cannot answer for stays open for the next run.

use std::time::Duration;

use aloft_shared::clock;
use serde::Serialize;

use crate::domain::{PaymentStatus, RefundStatus};
use crate::outcome::{apply, envelope, never_sent};
use crate::processor::{ChargeLookup, ProcessorRegistry};
use crate::service::{PaymentError, processor_of};
use crate::store::{PaymentStore, PaymentStoreError, Stuck};

/// How long a payment may stay `processing` (or a refund `pending`) before the
/// reconciler asks: well past the payments function's own timeout.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(300);

pub struct Reconciler {
    pub store: PaymentStore,
    pub processors: ProcessorRegistry,
    pub threshold: Duration,
}

/// What one run did, returned by the scheduled function (and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Open items older than the threshold.
    pub found: usize,
    /// Settled by this run.
    pub settled: usize,
    /// Settled by someone else meanwhile (a resumed request, a confirm).
    pub already_settled: usize,
    /// The gateway could not say yet; tried again next run.
    pub unresolved: usize,
}

/// How one stuck item ended.
enum Settled {
    Now,
    Already,
    Unresolved,
}

impl Reconciler {
    /// One run over everything stuck.
    pub async fn run(&self) -> Result<Report, PaymentError> {
        let cutoff = clock::now() - self.threshold;
        let stuck = self.store.stuck(&clock::rfc3339(cutoff)).await?;
        let mut report = Report {
            found: stuck.len(),
            ..Report::default()
        };
        for item in stuck {
            let settled = match &item {
                Stuck::Payment { payment_id } => self.payment(payment_id).await,
                Stuck::Refund {
                    payment_id,
                    refund_id,
                } => self.refund(payment_id, refund_id).await,
            };
            match settled {
                Ok(Settled::Now) => report.settled += 1,
                Ok(Settled::Already) => report.already_settled += 1,
                Ok(Settled::Unresolved) => report.unresolved += 1,
                Err(e) => {
                    tracing::error!(?item, error = %e, "could not reconcile");
                    report.unresolved += 1;
                }
            }
        }
        tracing::info!(?report, "reconciled");
        Ok(report)
    }

    #[tracing::instrument(skip(self))]
    async fn payment(&self, id: &str) -> Result<Settled, PaymentError> {
        let Some(stored) = self.store.get(id).await? else {
            return Ok(Settled::Already);
        };
        let payment = stored.payment;
        if payment.status != PaymentStatus::Processing {
            return Ok(Settled::Already);
        }
        let Some(gateway_key) = stored.gateway_key else {
            tracing::error!("a processing payment without its gateway key cannot be looked up");
            return Ok(Settled::Unresolved);
        };
        let processor = processor_of(&self.processors, &payment)?;
        let created_at = clock::parse_rfc3339(&payment.created_at)
            .map(|t| t.unix_timestamp())
            .unwrap_or(0);
        let found = processor
            .lookup(&ChargeLookup {
                payment_id: payment.id.clone(),
                idempotency_key: gateway_key,
                reference: payment.processor_reference.clone(),
                amount: crate::domain::Money {
                    minor: payment.amount,
                    currency: payment.currency,
                },
                created_at,
            })
            .await;
        let now = clock::rfc3339(clock::now());
        let next = match found {
            Ok(Some(outcome)) => apply(payment, Ok(outcome), &now),
            Ok(None) => never_sent(payment, &now),
            Err(e) => {
                tracing::warn!(error = %e, "the processor cannot say yet");
                return Ok(Settled::Unresolved);
            }
        };
        match self
            .store
            .finish(
                &next,
                PaymentStatus::Processing,
                None,
                envelope(&next)?.as_ref(),
            )
            .await
        {
            Ok(()) => {
                tracing::info!(status = next.status.as_str(), "payment settled");
                Ok(Settled::Now)
            }
            Err(PaymentStoreError::Changed) => Ok(Settled::Already),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn refund(&self, payment_id: &str, refund_id: &str) -> Result<Settled, PaymentError> {
        let Some(stored) = self.store.get(payment_id).await? else {
            return Ok(Settled::Already);
        };
        let Some(refund) = stored
            .refunds
            .iter()
            .find(|r| r.id == refund_id && r.status == RefundStatus::Pending)
            .cloned()
        else {
            return Ok(Settled::Already);
        };
        let Some(gateway_key) = stored.refund_keys.get(refund_id) else {
            tracing::error!("a pending refund without its gateway key cannot be sent again");
            return Ok(Settled::Unresolved);
        };
        // Sending the same refund with the same key: the gateway answers the first one,
        // or makes it now if it never arrived (it was accepted, so it is owed).
        match crate::refund::send(
            &self.store,
            &self.processors,
            &stored.payment,
            refund,
            gateway_key,
            None,
            true,
        )
        .await
        {
            Ok((refund, _)) if refund.status == RefundStatus::Pending => Ok(Settled::Unresolved),
            Ok(_) => Ok(Settled::Now),
            Err(PaymentError::Store(PaymentStoreError::RefundSettled)) => Ok(Settled::Already),
            Err(e) => Err(e),
        }
    }
}
