//! Users in DynamoDB. The only module that knows table names, key shapes and attribute
//! names.
//!
//! The users table holds two kinds of item: the user (`pk = USER#<id>`) and the claim on
//! its folded email (`pk = EMAIL#<email>`). A create writes the user, the claim, the first
//! audit entry and the outbox event in one transaction; the claim's
//! `attribute_not_exists` condition is what makes emails unique, even under concurrent
//! creates. Updates and deletes are conditioned on the version read, so a concurrent
//! change makes them fail instead of overwriting it.

use std::collections::HashMap;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, Page};
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::domain::{
    AuditAction, AuditEntry, Changes, SearchFilter, User, UserError, name_initial,
};

const USER_PREFIX: &str = "USER#";
const EMAIL_PREFIX: &str = "EMAIL#";
const INDEX_BY_EMAIL: &str = "by-email";
const INDEX_BY_ROLE: &str = "by-role";
const INDEX_BY_NAME: &str = "by-name";
const EVENT_SOURCE: &str = "aloft.users";
/// A delete re-reads and retries when a concurrent update moved the version in between.
const DELETE_ATTEMPTS: usize = 3;

/// The user item: the domain user plus the folded keys the indexes are built on.
#[derive(Debug, Serialize, Deserialize)]
struct UserItem {
    pk: String,
    email_key: String,
    name_key: String,
    name_initial: String,
    #[serde(flatten)]
    user: User,
}

impl From<&User> for UserItem {
    fn from(user: &User) -> Self {
        let name_key = user.name.key();
        Self {
            pk: user_pk(&user.id),
            email_key: user.email.key(),
            name_initial: name_initial(&name_key),
            name_key,
            user: user.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct AuditItem {
    subject: String,
    seq: u64,
    #[serde(flatten)]
    entry: AuditEntry,
}

/// The users table key of a user (payments reads it to check a user exists).
pub fn user_pk(id: &str) -> String {
    format!("{USER_PREFIX}{id}")
}

fn claim_pk(email_key: &str) -> String {
    format!("{EMAIL_PREFIX}{email_key}")
}

#[derive(Debug, Clone)]
pub struct UserStore {
    client: aws_sdk_dynamodb::Client,
    users_table: String,
    audit_table: String,
    outbox: Outbox,
    cursors: CursorCodec,
}

impl UserStore {
    /// Reads `USERS_TABLE`, `AUDIT_TABLE` (and the outbox's variables).
    pub fn from_env(
        config: &aloft_shared::aws::SdkConfig,
        cursors: CursorCodec,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(config),
            config::required("USERS_TABLE")?,
            config::required("AUDIT_TABLE")?,
            Outbox::from_env(config)?,
            cursors,
        ))
    }

    pub fn new(
        client: aws_sdk_dynamodb::Client,
        users_table: String,
        audit_table: String,
        outbox: Outbox,
        cursors: CursorCodec,
    ) -> Self {
        Self {
            client,
            users_table,
            audit_table,
            outbox,
            cursors,
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn create(&self, user: &User, actor: &str) -> Result<(), UserError> {
        let event = Envelope::new("user.created", EVENT_SOURCE, user)?;
        let items = vec![
            self.put_user(user, "attribute_not_exists(pk)", None)?,
            self.put_claim(user)?,
            self.put_audit(user, AuditAction::Created, actor, user.creation_changes())?,
        ];
        match self.outbox.transact(items, &[event]).await {
            Ok(()) => Ok(()),
            Err(e) if e.condition_failed_at(1) => {
                Err(UserError::EmailTaken(user.email.as_str().to_owned()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("pk", s(user_pk(id)))
            .consistent_read(true)
            .send()
            .await?;
        out.item
            .map(|item| Ok(serde_dynamo::from_item::<_, UserItem>(item)?.user))
            .transpose()
    }

    /// Writes `next` over `current` if nobody changed the user since `current` was read.
    #[tracing::instrument(skip_all, fields(user_id = %current.id))]
    pub async fn update(
        &self,
        current: &User,
        next: &User,
        changes: Changes,
        actor: &str,
    ) -> Result<(), UserError> {
        let event = Envelope::new(
            "user.updated",
            EVENT_SOURCE,
            serde_json::json!({"user": next, "changes": &changes}),
        )?;
        let mut items = vec![
            self.put_user(next, "version = :expected", Some(current.version))?,
            self.put_audit(next, AuditAction::Updated, actor, changes)?,
        ];
        let reclaims = current.email_key_changes(next);
        if reclaims {
            items.push(self.put_claim(next)?);
            items.push(self.delete_claim(current)?);
        }
        match self.outbox.transact(items, &[event]).await {
            Ok(()) => Ok(()),
            Err(e) if e.condition_failed_at(0) => {
                Err(self.stale_or_gone(&current.id, current.version).await)
            }
            Err(e) if reclaims && e.condition_failed_at(2) => {
                Err(UserError::EmailTaken(next.email.as_str().to_owned()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Deletes the user and frees its email; the audit trail stays.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn delete(&self, id: &str, actor: &str) -> Result<(), UserError> {
        for _ in 0..DELETE_ATTEMPTS {
            let current = self
                .get(id)
                .await?
                .ok_or_else(|| UserError::NotFound(id.to_owned()))?;
            let event = Envelope::new(
                "user.deleted",
                EVENT_SOURCE,
                serde_json::json!({"id": current.id, "email": current.email}),
            )?;
            // The deletion is the next entry in the user's history.
            let mut gone = current.clone();
            gone.version += 1;
            gone.updated_at = aloft_shared::clock::rfc3339(aloft_shared::clock::now());
            let delete_user = Delete::builder()
                .table_name(&self.users_table)
                .key("pk", s(user_pk(id)))
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(current.version))
                .build()
                .map_err(|e| StoreError::new("delete user", e))?;
            let items = vec![
                TransactWriteItem::builder().delete(delete_user).build(),
                self.delete_claim(&current)?,
                self.put_audit(
                    &gone,
                    AuditAction::Deleted,
                    actor,
                    current.deletion_changes(),
                )?,
            ];
            match self.outbox.transact(items, &[event]).await {
                Ok(()) => return Ok(()),
                Err(e) if e.condition_failed_at(0) => continue,
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        Err(StoreError::internal(format!("user {id} kept changing during delete")).into())
    }

    #[tracing::instrument(skip_all)]
    pub async fn search(
        &self,
        filter: &SearchFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<User>, UserError> {
        let scope = filter.cursor_scope();
        let start = self.cursors.start_key(&scope, cursor)?;
        let query = self
            .client
            .query()
            .table_name(&self.users_table)
            .limit(limit)
            .set_exclusive_start_key(start);
        // The most selective index answers; the other filters apply to what it reads.
        let (index, key, rest) = match filter {
            SearchFilter { email: Some(_), .. } => (
                INDEX_BY_EMAIL,
                "email_key = :e",
                [Some("#role = :r"), Some("begins_with(name_key, :p)")],
            ),
            SearchFilter {
                name_prefix: Some(_),
                ..
            } => (
                INDEX_BY_NAME,
                "name_initial = :i AND begins_with(name_key, :p)",
                [Some("#role = :r"), None],
            ),
            SearchFilter { role: Some(_), .. } => (INDEX_BY_ROLE, "#role = :r", [None, None]),
            SearchFilter { .. } => {
                return Err(StoreError::internal("a search without a filter").into());
            }
        };
        let mut query = query.index_name(index).key_condition_expression(key);
        if let Some(e) = &filter.email {
            query = query.expression_attribute_values(":e", s(e));
        }
        if let Some(role) = filter.role {
            query = query
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":r", s(role.as_str()));
        }
        if let Some(prefix) = &filter.name_prefix {
            query = query.expression_attribute_values(":p", s(prefix));
            if index == INDEX_BY_NAME {
                query = query.expression_attribute_values(":i", s(name_initial(prefix)));
            }
        }
        let given = [filter.role.is_some(), filter.name_prefix.is_some()];
        let also: Vec<&str> = rest
            .iter()
            .zip(given)
            .filter_map(|(f, g)| f.filter(|_| g))
            .collect();
        if !also.is_empty() {
            query = query.filter_expression(also.join(" AND "));
        }
        let out = query.send().await.map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<UserItem>(&scope, out)?
            .map(|item| item.user))
    }

    /// The user's history, newest first. Kept after the user is deleted.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn audit(
        &self,
        id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, UserError> {
        let scope = format!("users:audit:{id}");
        let start = self.cursors.start_key(&scope, cursor)?;
        let out = self
            .client
            .query()
            .table_name(&self.audit_table)
            .key_condition_expression("subject = :s")
            .expression_attribute_values(":s", s(id))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<AuditItem>(&scope, out)?
            .map(|item| item.entry))
    }

    async fn stale_or_gone(&self, id: &str, expected: u64) -> UserError {
        match self.get(id).await {
            Ok(Some(now)) => UserError::StaleVersion {
                expected,
                current: now.version,
            },
            Ok(None) => UserError::NotFound(id.to_owned()),
            Err(e) => e.into(),
        }
    }

    fn put_user(
        &self,
        user: &User,
        condition: &str,
        expected: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let item: Item = serde_dynamo::to_item(UserItem::from(user))?;
        let put = Put::builder()
            .table_name(&self.users_table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(
                expected.map(|v| HashMap::from([(":expected".to_owned(), n(v))])),
            )
            .build()
            .map_err(|e| StoreError::new("put user", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_claim(&self, user: &User) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.users_table)
            .item("pk", s(claim_pk(&user.email.key())))
            .item("user_id", s(&user.id))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("put email claim", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_claim(&self, user: &User) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.users_table)
            .key("pk", s(claim_pk(&user.email.key())))
            .condition_expression("user_id = :id")
            .expression_attribute_values(":id", s(&user.id))
            .build()
            .map_err(|e| StoreError::new("delete email claim", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn put_audit(
        &self,
        user: &User,
        action: AuditAction,
        actor: &str,
        changes: Changes,
    ) -> Result<TransactWriteItem, StoreError> {
        let entry = AuditEntry {
            at: user.updated_at.clone(),
            action,
            actor: actor.to_owned(),
            changes,
        };
        let item: Item = serde_dynamo::to_item(AuditItem {
            subject: user.id.clone(),
            seq: user.version,
            entry,
        })?;
        let put = Put::builder()
            .table_name(&self.audit_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(seq)")
            .build()
            .map_err(|e| StoreError::new("put audit entry", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}
