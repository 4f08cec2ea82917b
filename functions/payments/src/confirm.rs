//! Confirm and cancel: a payment waiting for its payer (or one whose outcome is unknown
//! but whose reference is known) asks its processor where the charge stands. Only an
//! answer moves the payment; a processor that cannot be read leaves it as it is, and of
//! concurrent confirms exactly one records the outcome.

use aloft_shared::clock;

use crate::domain::{Payment, PaymentStatus};
use crate::outcome::{apply, envelope};
use crate::processor::CancelOutcome;
use crate::service::{PaymentError, Payments};
use crate::store::{PaymentStoreError, StoredPayment};

impl Payments {
    /// The stored payment, if it is in one of `allowed` (a `processing` one only once it
    /// has a reference), with that reference.
    async fn awaiting(
        &self,
        id: &str,
        action: &'static str,
        allowed: &[PaymentStatus],
    ) -> Result<(StoredPayment, String), PaymentError> {
        let stored = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(id.to_owned()))?;
        let status = stored.payment.status;
        match stored.payment.processor_reference.clone() {
            Some(reference) if allowed.contains(&status) => Ok((stored, reference)),
            _ => Err(PaymentError::WrongState { action, status }),
        }
    }

    /// Asks the processor how a waiting charge stands and records it.
    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    pub async fn confirm(&self, id: &str) -> Result<StoredPayment, PaymentError> {
        let (mut stored, reference) = self
            .awaiting(
                id,
                "confirmed",
                &[PaymentStatus::RequiresAction, PaymentStatus::Processing],
            )
            .await?;
        let processor = self.processor_of(&stored.payment)?;
        let from = stored.payment.status;
        let outcome = processor.confirm(&reference).await.map_err(|e| {
            tracing::warn!(error = %e, "confirm could not read the processor; payment unchanged");
            PaymentError::ProcessorUnavailable { action: "be asked" }
        })?;
        let next = apply(
            stored.payment.clone(),
            Ok(outcome),
            &clock::rfc3339(clock::now()),
        );
        if next.status == from {
            stored.payment = next;
            return Ok(stored);
        }
        self.settle(stored, next, from, "confirmed").await
    }

    /// Abandons a charge waiting for its payer.
    #[tracing::instrument(skip_all, fields(payment_id = %id))]
    pub async fn cancel(&self, id: &str) -> Result<StoredPayment, PaymentError> {
        let (stored, reference) = self
            .awaiting(id, "canceled", &[PaymentStatus::RequiresAction])
            .await?;
        let processor = self.processor_of(&stored.payment)?;
        match processor.cancel(&reference).await {
            Ok(CancelOutcome::Canceled) => {}
            Ok(CancelOutcome::Failed { failure }) => {
                return Err(PaymentError::CancelRefused(failure.message));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cancel could not reach the processor");
                return Err(PaymentError::ProcessorUnavailable {
                    action: "cancel the payment",
                });
            }
        }
        let mut next = stored.payment.clone();
        next.status = PaymentStatus::Canceled;
        next.next_action = None;
        next.updated_at = clock::rfc3339(clock::now());
        self.settle(stored, next, PaymentStatus::RequiresAction, "canceled")
            .await
    }

    /// Records `next` if the payment is still `from`. When another request moved it
    /// first to the same state (a concurrent confirm), that is this one's answer too.
    async fn settle(
        &self,
        mut stored: StoredPayment,
        next: Payment,
        from: PaymentStatus,
        action: &'static str,
    ) -> Result<StoredPayment, PaymentError> {
        match self
            .store
            .finish(&next, from, None, envelope(&next)?.as_ref())
            .await
        {
            Ok(()) => {
                stored.payment = next;
                Ok(stored)
            }
            Err(PaymentStoreError::Changed) => {
                let now = self
                    .store
                    .get(&next.id)
                    .await?
                    .ok_or_else(|| PaymentError::NotFound(next.id.clone()))?;
                if now.payment.status == next.status {
                    Ok(now)
                } else {
                    Err(PaymentError::WrongState {
                        action,
                        status: now.payment.status,
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
