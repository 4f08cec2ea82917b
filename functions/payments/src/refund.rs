//! The refund flow: reserve the amount with the idempotency key (a conditional write on
//! what is left to refund), send the refund once with the derived gateway key, settle it
//! with the answer and the event. An unknown outcome keeps the refund `pending` and its
//! amount reserved until the gateway says otherwise; a retry while the first runs is
//! `idempotency-in-progress`; a request whose first holder died resumes its refund
//! without reserving again.

use aloft_shared::clock;
use aloft_shared::idempotency::{Conflict, Lock, StoredResponse};
use aws_sdk_dynamodb::types::TransactWriteItem;

use crate::domain::{
    Money, Payment, Refund, RefundError, RefundRequest, RefundStatus, refund_amount,
};
use crate::outcome::{as_repeat, failure, processor_failure};
use crate::processor::{ProcessorRegistry, RefundOutcome};
use crate::service::{
    Caller, Idempotent, PaymentError, Payments, REFUND_OPERATION, created, processor_of,
};
use crate::store::{PaymentStore, PaymentStoreError};

/// Optimistic reservation attempts when concurrent refunds race for one payment.
const RESERVE_ATTEMPTS: usize = 50;

impl Payments {
    /// Refunds (part of) a payment, exactly once per idempotency key.
    #[tracing::instrument(skip_all, fields(payment_id = %payment_id, caller = %caller.key_id))]
    pub async fn refund(
        &self,
        caller: &Caller,
        payment_id: &str,
        request: &RefundRequest,
    ) -> Result<Idempotent<Refund>, PaymentError> {
        let not_found = || PaymentError::NotFound(payment_id.to_owned());
        let mut stored = self.store.get(payment_id).await?.ok_or_else(not_found)?;
        let gateway_key = self.gateway_key(caller, REFUND_OPERATION).await?;
        for _ in 0..RESERVE_ATTEMPTS {
            let amount = match refund_amount(request, stored.payment.status, stored.refundable) {
                Ok(a) => a,
                Err(refused) => {
                    // Nothing left may be this very request's doing (it is running, or
                    // done): its key decides before the refusal does.
                    return match self.conflict(caller, REFUND_OPERATION).await? {
                        Conflict::Gone => Err(match refused {
                            RefundError::Invalid(errors) => PaymentError::Invalid(errors),
                            RefundError::Refused(r) => PaymentError::Refused(r),
                        }),
                        other => self.refund_taken(caller, payment_id, other).await,
                    };
                }
            };
            let now = clock::now();
            let at = clock::rfc3339(now);
            let refund = Refund {
                id: uuid::Uuid::new_v4().to_string(),
                payment_id: payment_id.to_owned(),
                amount,
                currency: stored.payment.currency,
                status: RefundStatus::Pending,
                processor_reference: None,
                failure: None,
                created_at: at.clone(),
                updated_at: at,
            };
            let (lock, take) = self.store.idempotency.take(
                &caller.key_id,
                REFUND_OPERATION,
                &caller.idempotency_key,
                &caller.fingerprint,
                &refund.id,
                now.unix_timestamp(),
            )?;
            match self
                .store
                .reserve_refund(take, &refund, stored.refundable, &gateway_key)
                .await
            {
                Ok(()) => {
                    return send(
                        &self.store,
                        &self.processors,
                        &stored.payment,
                        refund,
                        &gateway_key,
                        Some(&lock),
                        false,
                    )
                    .await
                    .map(|(refund, answer)| Idempotent::Done(refund, answer));
                }
                Err(PaymentStoreError::KeyTaken) => {
                    let conflict = self.conflict(caller, REFUND_OPERATION).await?;
                    return self.refund_taken(caller, payment_id, conflict).await;
                }
                Err(PaymentStoreError::Changed) => {
                    stored = self.store.get(payment_id).await?.ok_or_else(not_found)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(PaymentError::Changed)
    }

    /// The key is held: answer the earlier request, or resume it if its holder died.
    async fn refund_taken(
        &self,
        caller: &Caller,
        payment_id: &str,
        conflict: Conflict,
    ) -> Result<Idempotent<Refund>, PaymentError> {
        let Conflict::Abandoned(abandoned) = conflict else {
            return Ok(Idempotent::Earlier(conflict));
        };
        let now = clock::now().unix_timestamp();
        let Some(lock) = self.store.idempotency.take_over(&abandoned, now).await? else {
            return Ok(Idempotent::Earlier(
                self.conflict(caller, REFUND_OPERATION).await?,
            ));
        };
        let refund_id = abandoned.resource().unwrap_or_default();
        // The fingerprint matched, so the path, and with it the payment, is the same.
        let stored = self
            .store
            .get(payment_id)
            .await?
            .ok_or_else(|| PaymentError::NotFound(payment_id.to_owned()))?;
        let Some(refund) = stored.refunds.iter().find(|r| r.id == refund_id).cloned() else {
            return Err(PaymentError::Internal(format!(
                "idempotency record names missing refund {refund_id}"
            )));
        };
        tracing::info!(refund_id, status = ?refund.status, "resuming an abandoned refund");
        if refund.status != RefundStatus::Pending {
            let answer = answer(&refund)?;
            self.store
                .answer(self.store.idempotency.complete(&lock, &answer)?)
                .await?;
            return Ok(Idempotent::Done(refund, answer));
        }
        let gateway_key = match stored.refund_keys.get(&refund.id) {
            Some(key) => key.clone(),
            None => self.gateway_key(caller, REFUND_OPERATION).await?,
        };
        send(
            &self.store,
            &self.processors,
            &stored.payment,
            refund,
            &gateway_key,
            Some(&lock),
            true,
        )
        .await
        .map(|(refund, answer)| Idempotent::Done(refund, answer))
    }
}

/// Sends a reserved refund to the processor (again, with the same key, when resumed or
/// reconciled: `repeat`, and the gateway answers the first one) and settles it. With
/// `lock`, stores the request's answer in the same transaction.
pub(crate) async fn send(
    store: &PaymentStore,
    processors: &ProcessorRegistry,
    payment: &Payment,
    mut refund: Refund,
    gateway_key: &str,
    lock: Option<&Lock>,
    repeat: bool,
) -> Result<(Refund, StoredResponse), PaymentError> {
    let processor = processor_of(processors, payment)?;
    let mut outcome = processor
        .refund(&crate::processor::RefundRequest {
            payment_id: payment.id.clone(),
            refund_id: refund.id.clone(),
            charge_reference: payment.processor_reference.clone().unwrap_or_default(),
            idempotency_key: gateway_key.to_owned(),
            amount: Money {
                minor: refund.amount,
                currency: refund.currency,
            },
        })
        .await;
    if repeat {
        outcome = as_repeat(outcome, RefundOutcome::failure, processor.name());
    }
    refund.updated_at = clock::rfc3339(clock::now());
    match outcome {
        Ok(RefundOutcome::Succeeded { reference }) => {
            refund.status = RefundStatus::Succeeded;
            refund.processor_reference = Some(reference);
            refund.failure = None;
        }
        Ok(RefundOutcome::Failed {
            reference,
            failure: f,
        }) => {
            refund.status = RefundStatus::Failed;
            refund.processor_reference = reference;
            refund.failure = Some(failure(f));
        }
        Err(e) => {
            // Only an answer proving nothing was refunded gives the amount back.
            refund.status = if e.is_uncertain() {
                RefundStatus::Pending
            } else {
                RefundStatus::Failed
            };
            refund.processor_reference = e.reference().map(str::to_owned);
            refund.failure = Some(processor_failure(&e));
        }
    }
    let answer = answer(&refund)?;
    let complete: Option<TransactWriteItem> = lock
        .map(|l| store.idempotency.complete(l, &answer))
        .transpose()?;
    match refund.status {
        RefundStatus::Succeeded => {
            store.refund_succeeded(&refund, complete).await?;
        }
        RefundStatus::Failed => store.refund_failed(&refund, complete).await?,
        // Nobody waiting for an answer (the reconciler): nothing to record yet.
        RefundStatus::Pending => {
            if let Some(complete) = complete {
                store.refund_uncertain(&refund, complete).await?;
            }
        }
    }
    Ok((refund, answer))
}

fn answer(refund: &Refund) -> Result<StoredResponse, PaymentError> {
    created(refund, format!("/payments/{}", refund.payment_id))
}
