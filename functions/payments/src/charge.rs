//! The charge flow: take the idempotency key with the `processing` payment, charge once
//! through the processor with the derived gateway key, settle with the answer and the
//! event in one transaction. A request whose first holder died resumes that payment
//! (same id, same gateway key: the gateway answers the first charge again) rather than
//! creating a second one.

use aloft_shared::clock;
use aloft_shared::idempotency::{Conflict, Lock};

use crate::domain::{NewPayment, Payment, PaymentStatus};
use crate::outcome::{apply, as_repeat, envelope};
use crate::processor::{ChargeOutcome, ChargeRequest, NotSupported, Processor};
use crate::service::{
    CREATE_OPERATION, Caller, Idempotent, PaymentError, PaymentView, Payments, created, derived,
};
use crate::store::PaymentStoreError;

impl Payments {
    /// Creates and charges a payment, exactly once per idempotency key.
    #[tracing::instrument(skip_all, fields(caller = %caller.key_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewPayment,
    ) -> Result<Idempotent<Payment>, PaymentError> {
        let processor = self
            .processors
            .select(new.method.kind(), new.amount.currency)
            .map_err(|e| {
                let field = match e {
                    NotSupported::Method(_) => "method",
                    NotSupported::Currency { .. } => "currency",
                };
                PaymentError::Invalid(vec![aloft_shared::FieldError::new(field, e.to_string())])
            })?;
        let now = clock::now();
        let at = clock::rfc3339(now);
        let payment = Payment {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: new.user_id.clone(),
            amount: new.amount.minor,
            currency: new.amount.currency,
            method: new.method.summary(derived(&self.fingerprint_key).await?),
            description: new.description.clone(),
            metadata: new.metadata.clone(),
            status: PaymentStatus::Processing,
            processor: processor.name().to_owned(),
            processor_reference: None,
            failure: None,
            next_action: None,
            amount_refunded: 0,
            created_at: at.clone(),
            updated_at: at,
        };
        let gateway_key = self.gateway_key(caller, CREATE_OPERATION).await?;
        let (lock, take) = self.store.idempotency.take(
            &caller.key_id,
            CREATE_OPERATION,
            &caller.idempotency_key,
            &caller.fingerprint,
            &payment.id,
            now.unix_timestamp(),
        )?;
        match self.store.begin(take, &payment, &gateway_key).await {
            Ok(()) => {
                self.charge(payment, &lock, &new, processor.as_ref(), gateway_key, false)
                    .await
            }
            Err(PaymentStoreError::KeyTaken) => {
                match self.conflict(caller, CREATE_OPERATION).await? {
                    Conflict::Abandoned(abandoned) => {
                        let Some(lock) = self
                            .store
                            .idempotency
                            .take_over(&abandoned, clock::now().unix_timestamp())
                            .await?
                        else {
                            return Ok(Idempotent::Earlier(
                                self.conflict(caller, CREATE_OPERATION).await?,
                            ));
                        };
                        let id = abandoned.resource().unwrap_or_default().to_owned();
                        self.resume(&id, &lock, &new).await
                    }
                    other => Ok(Idempotent::Earlier(other)),
                }
            }
            Err(PaymentStoreError::UnknownUser) => {
                Err(PaymentError::Invalid(vec![aloft_shared::FieldError::new(
                    "user_id",
                    format!("no user with id {}", new.user_id),
                )]))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Finishes the payment a dead request started: charges it again with its stored
    /// gateway key (the gateway answers the first charge if there was one), or, when it
    /// was settled meanwhile (the reconciler), answers it as it is.
    async fn resume(
        &self,
        id: &str,
        lock: &Lock,
        new: &NewPayment,
    ) -> Result<Idempotent<Payment>, PaymentError> {
        let stored = self.store.get(id).await?.ok_or_else(|| {
            PaymentError::Internal(format!("idempotency record names missing payment {id}"))
        })?;
        tracing::info!(payment_id = %id, status = stored.payment.status.as_str(), "resuming an abandoned request");
        if stored.payment.status != PaymentStatus::Processing {
            return self.answer_as_is(stored.payment, lock).await;
        }
        let processor = self.processor_of(&stored.payment)?;
        let gateway_key = stored
            .gateway_key
            .ok_or_else(|| PaymentError::Internal(format!("payment {id} has no gateway key")))?;
        self.charge(
            stored.payment,
            lock,
            new,
            processor.as_ref(),
            gateway_key,
            true,
        )
        .await
    }

    async fn charge(
        &self,
        payment: Payment,
        lock: &Lock,
        new: &NewPayment,
        processor: &dyn Processor,
        gateway_key: String,
        repeat: bool,
    ) -> Result<Idempotent<Payment>, PaymentError> {
        let mut outcome = processor
            .charge(&ChargeRequest {
                payment_id: payment.id.clone(),
                idempotency_key: gateway_key,
                amount: new.amount,
                method: new.method.clone(),
                description: new.description.clone(),
            })
            .await;
        if repeat {
            outcome = as_repeat(outcome, ChargeOutcome::failure, processor.name());
        }
        let next = apply(payment, outcome, &clock::rfc3339(clock::now()));
        let answer = answer(&next)?;
        let complete = self.store.idempotency.complete(lock, &answer)?;
        match self
            .store
            .finish(
                &next,
                PaymentStatus::Processing,
                Some(complete),
                envelope(&next)?.as_ref(),
            )
            .await
        {
            Ok(()) => Ok(Idempotent::Done(next, answer)),
            // Settled meanwhile (the reconciler, which asks the same gateway): answer
            // what it recorded.
            Err(PaymentStoreError::Changed) => {
                let current = self
                    .store
                    .get(&next.id)
                    .await?
                    .ok_or_else(|| PaymentError::NotFound(next.id.clone()))?;
                self.answer_as_is(current.payment, lock).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn answer_as_is(
        &self,
        payment: Payment,
        lock: &Lock,
    ) -> Result<Idempotent<Payment>, PaymentError> {
        let answer = answer(&payment)?;
        self.store
            .answer(self.store.idempotency.complete(lock, &answer)?)
            .await?;
        Ok(Idempotent::Done(payment, answer))
    }
}

fn answer(p: &Payment) -> Result<aloft_shared::idempotency::StoredResponse, PaymentError> {
    created(
        &PaymentView {
            payment: p,
            refunds: &[],
        },
        format!("/payments/{}", p.id),
    )
}
