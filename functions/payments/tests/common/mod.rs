//! The payments API on the local stack's tables (`make test` provides the endpoint and
//! the tables template.yaml declares), with the sandbox processors and their ledger.
#![allow(dead_code)]

use std::sync::Arc;

use aloft_payments::processor::ProcessorRegistry;
use aloft_payments::processor::sandbox::{Ledger, Sandbox};
use aloft_payments::service::Payments;
use aloft_payments::store::{PaymentStore, PaymentTables};
use aloft_shared::cursor::CursorCodec;
use aloft_shared::http::{EventResponse, handle_event, sample_event};
use aloft_shared::master_key::{LazyKey, MasterKey};
use aloft_shared::outbox::Outbox;

pub struct Stack {
    pub sdk: aloft_shared::aws::SdkConfig,
    master: MasterKey,
}

pub async fn stack() -> Stack {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these with `make test` or `make bench`, which start the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    Stack {
        sdk,
        master: MasterKey::from_bytes(b"payments-sample-events-master-key-0123".to_vec()),
    }
}

impl Stack {
    /// The payments API whose store talks through `client` (e.g. a counting one).
    pub fn api(&self, client: aws_sdk_dynamodb::Client) -> Payments {
        // The gateway's own ledger is not the payment's cost: a client of its own.
        let ledger = || {
            Some(Ledger::new(
                aloft_shared::aws::dynamodb(&self.sdk),
                "SandboxLedgerTable",
            ))
        };
        self.api_with(
            client,
            ProcessorRegistry::new(vec![
                Arc::new(Sandbox::card(ledger())),
                Arc::new(Sandbox::paypal(ledger())),
            ]),
        )
    }

    /// The payments store on the stack's tables.
    pub fn store(&self, client: aws_sdk_dynamodb::Client) -> PaymentStore {
        let outbox = Outbox::new(client.clone(), "OutboxTable".into());
        PaymentStore::new(
            client,
            PaymentTables {
                payments: "PaymentsTable".into(),
                users: "UsersTable".into(),
                idempotency: "IdempotencyTable".into(),
            },
            outbox,
            CursorCodec::new(&self.master),
        )
    }

    /// The payments API with these processors.
    pub fn api_with(
        &self,
        client: aws_sdk_dynamodb::Client,
        processors: ProcessorRegistry,
    ) -> Payments {
        Payments {
            store: self.store(client),
            processors,
            fingerprint_key: LazyKey::new(&self.master, "card-fingerprint"),
            idempotency_key: LazyKey::new(&self.master, "idempotency"),
        }
    }

    /// A user created through the users function's own sample event; its id.
    pub async fn user(&self) -> String {
        let outbox = Outbox::new(aloft_shared::aws::dynamodb(&self.sdk), "OutboxTable".into());
        let users = aloft_users::store::UserStore::new(
            aloft_shared::aws::dynamodb(&self.sdk),
            "UsersTable".into(),
            "AuditTable".into(),
            outbox,
            CursorCodec::new(&self.master),
        );
        let email = format!("payer-{}@example.com", uuid::Uuid::new_v4().simple());
        let event = sample_event("users-create.json", |e| {
            e["body"] = serde_json::json!({"email": email, "name": "Payer", "role": "member"})
                .to_string()
                .into();
        });
        let r = handle_event(aloft_users::api::router(users), &event).await;
        assert_eq!(r.status, http::StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }
}

/// Sends `events/http/<file>` (edited) into the payments router.
pub async fn send(
    api: Payments,
    file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> EventResponse {
    handle_event(aloft_payments::api::router(api), &sample_event(file, edit)).await
}

/// The create sample for `user_id`, with a fresh Idempotency-Key.
pub fn create_for(user_id: &str) -> impl FnOnce(&mut serde_json::Value) + '_ {
    move |e| {
        let mut body: serde_json::Value =
            serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
        body["user_id"] = user_id.into();
        e["body"] = body.to_string().into();
        e["headers"]["idempotency-key"] = uuid::Uuid::new_v4().to_string().into();
    }
}

pub type Response = EventResponse;

/// The problem `type` slug of a problem+json body.
pub fn problem(body: &serde_json::Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:aloft:problem:"))
        .unwrap_or_default()
}
