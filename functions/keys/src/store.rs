//! API keys in DynamoDB: one item per key, keyed by its id; the `by-created` index lists
//! them newest first without a Scan. The secret itself is never written, only its hash.
//! A key with a rate limit also has a bucket item (`id = bucket#<key id>`, its GCRA
//! `tat` in microseconds); bucket items have no `listing`, so the index never shows them.

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, CursorError, Page};
use aloft_shared::dynamo::{StoreError, n, s};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use crate::domain::ApiKey;
use crate::limit::RateLimit;

const INDEX_BY_CREATED: &str = "by-created";
/// Every key shares one listing partition: keys are few (dozens, not millions).
const LISTING: &str = "key";
const LIST_SCOPE: &str = "keys";
const BUCKET_PREFIX: &str = "bucket#";
/// Conditional writes lost to other authorizer processes before giving up and refusing.
/// Each loss means another request was let in, and once the bucket is empty everyone
/// refuses without writing, so N concurrent requests lose at most `burst` times; past
/// this many the key is far over any limit a burst allows at once.
const BUCKET_ATTEMPTS: usize = 16;

/// What [`KeyStore::take_token`] decided, and the bucket's TAT as last seen (to start
/// from next time, saving a lost write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub allowed: bool,
    pub tat: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyItem {
    listing: String,
    secret_hash: String,
    #[serde(flatten)]
    key: ApiKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("no API key with id {0}")]
    NotFound(String),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct KeyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Only listing pages; the authorizer runs without one (and without access to the
    /// master key).
    cursors: Option<CursorCodec>,
}

impl KeyStore {
    /// Reads `API_KEYS_TABLE`.
    pub fn from_env(config: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(config),
            config::required("API_KEYS_TABLE")?,
        ))
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self {
            client,
            table,
            cursors: None,
        }
    }

    pub fn with_cursors(mut self, cursors: CursorCodec) -> Self {
        self.cursors = Some(cursors);
        self
    }

    /// Stores a new key with the hash of its secret. Ids are random; the condition only
    /// guards against overwriting a key should one ever repeat.
    #[tracing::instrument(skip_all, fields(key_id = %key.id))]
    pub async fn create(&self, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(KeyItem {
            listing: LISTING.into(),
            secret_hash: secret_hash.into(),
            key: key.clone(),
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await?;
        Ok(())
    }

    /// The key and its secret hash, as the authorizer needs them. Strongly consistent, so
    /// a revocation is seen by the next authorization that is not served from the
    /// gateway's cache.
    #[tracing::instrument(skip_all, fields(key_id = %id))]
    pub async fn get_with_hash(&self, id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await?;
        out.item
            .map(|item| {
                let item: KeyItem = serde_dynamo::from_item(item)?;
                Ok((item.key, item.secret_hash))
            })
            .transpose()
    }

    /// Takes one token from the key's bucket at `now_us()` (µs since the epoch), starting
    /// from `seen` (the TAT this process saw last, if any). Over the limit by what it has
    /// seen, it refuses without a request (the real TAT can only be later). Otherwise one
    /// conditional UpdateItem; if another process moved the TAT meanwhile, the failed
    /// condition returns the current one and it decides again, at a fresh reading of the
    /// clock: the winner's TAT came from a later reading than the one this attempt
    /// started with, and judged against that older time the bucket's last token looks
    /// taken (concurrent requests then let fewer than the burst in).
    #[tracing::instrument(skip_all, fields(key_id = %key_id))]
    pub async fn take_token(
        &self,
        key_id: &str,
        limit: &RateLimit,
        mut seen: Option<i64>,
        now_us: impl Fn() -> i64,
    ) -> Result<Taken, StoreError> {
        for _ in 0..BUCKET_ATTEMPTS {
            let Some(next) = limit.admit(seen, now_us()) else {
                return Ok(Taken {
                    allowed: false,
                    tat: seen,
                });
            };
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("id", s(format!("{BUCKET_PREFIX}{key_id}")))
                .update_expression("SET tat = :next")
                .expression_attribute_values(":next", n(next))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let update = match seen {
                None => update.condition_expression("attribute_not_exists(tat)"),
                Some(tat) => update
                    .condition_expression("tat = :seen")
                    .expression_attribute_values(":seen", n(tat)),
            };
            match update.send().await {
                Ok(_) => {
                    return Ok(Taken {
                        allowed: true,
                        tat: Some(next),
                    });
                }
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
                {
                    seen = match e.err() {
                        UpdateItemError::ConditionalCheckFailedException(failed) => failed
                            .item()
                            .and_then(|item| item.get("tat"))
                            .and_then(|v| match v {
                                AttributeValue::N(n) => n.parse().ok(),
                                _ => None,
                            }),
                        _ => None,
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!("bucket contended past {BUCKET_ATTEMPTS} attempts; refusing");
        Ok(Taken {
            allowed: false,
            tat: seen,
        })
    }

    /// Keys newest first, one page at a time.
    pub async fn list(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKey>, KeyStoreError> {
        let cursors = self.cursors()?;
        let start = cursors.start_key(LIST_SCOPE, cursor)?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BY_CREATED)
            .key_condition_expression("listing = :l")
            .expression_attribute_values(":l", s(LISTING))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from)?;
        let page: Page<KeyItem> = cursors.page(LIST_SCOPE, out)?;
        Ok(page.map(|item| item.key))
    }

    /// Marks the key revoked (keeping the first revocation time if it already was), and
    /// returns it. Revoking twice is not an error: the caller wants it revoked, and it is.
    #[tracing::instrument(skip_all, fields(key_id = %id))]
    pub async fn revoke(&self, id: &str, at: &str) -> Result<ApiKey, KeyStoreError> {
        // A bucket item is not a key (and must never get a `revoked_at`).
        if id.starts_with(BUCKET_PREFIX) {
            return Err(KeyStoreError::NotFound(id.to_owned()));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":at", s(at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: KeyItem = serde_dynamo::from_item(out.attributes.unwrap_or_default())
                    .map_err(StoreError::from)?;
                Ok(item.key)
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(KeyStoreError::NotFound(id.to_owned()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    fn cursors(&self) -> Result<&CursorCodec, StoreError> {
        self.cursors
            .as_ref()
            .ok_or_else(|| StoreError::internal("key listing needs a cursor codec"))
    }
}
