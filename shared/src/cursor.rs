//! Opaque, tamper-evident pagination cursors.
//!
//! A cursor is `base64url(json) "." base64url(hmac)`: the DynamoDB `LastEvaluatedKey`
//! plus the scope of the query it belongs to, signed with a key derived from the master
//! key. A forged, garbled or foreign cursor (another query's, another deployment's) is
//! rejected with a 400 before any DynamoDB call, so it can never start a read elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::dynamo::StoreError;
use crate::master_key::{DerivedKey, MasterKey};
use crate::problem::{FieldError, Problem};

/// Longer than any key we page on could make it; anything longer is not ours.
const MAX_CURSOR_LEN: usize = 2048;

pub const DEFAULT_LIMIT: i32 = 25;

/// `?limit=&cursor=` of a paginated route that takes nothing else.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}
pub const MAX_LIMIT: i32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    #[error("cursor is malformed")]
    Malformed,
    #[error("cursor signature does not match")]
    BadSignature,
    #[error("cursor belongs to a different query")]
    WrongScope,
    /// The master key could not be read (Secrets Manager): a fault of ours, not the cursor's.
    #[error("cursor key is unavailable")]
    KeyUnavailable,
}

impl From<CursorError> for Problem {
    fn from(e: CursorError) -> Self {
        if e == CursorError::KeyUnavailable {
            return Problem::internal();
        }
        Problem::bad_request(
            "invalid-cursor",
            format!("{e}; pass back `next_cursor` exactly as received"),
        )
        .with_errors(vec![FieldError::new("cursor", e.to_string())])
    }
}

/// Key attributes are only ever S or N (B keys are not used by aloft).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum KeyValue {
    S(String),
    N(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The query this cursor continues (index + partition value), so it can't be replayed
    /// against another one.
    s: String,
    k: BTreeMap<String, KeyValue>,
}

/// Signs and checks cursors. Its key is derived on first use (the first cursor signed or
/// checked), so building one at cold start never reads the master key's secret.
#[derive(Clone, Debug)]
pub struct CursorCodec {
    /// Behind a `Send + Sync` trait object: a handler's state is checked for `Send` and
    /// `Sync` through every field, inside futures already nested deep, and a lazily
    /// loaded key spelled out in full took the largest binaries past rustc's query depth.
    state: Arc<dyn LazyKey>,
}

trait LazyKey: Send + Sync + std::fmt::Debug {
    fn state(&self) -> &CodecState;
}

#[derive(Debug)]
struct CodecState {
    master: MasterKey,
    key: OnceLock<DerivedKey>,
}

impl LazyKey for CodecState {
    fn state(&self) -> &CodecState {
        self
    }
}

impl CursorCodec {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            state: Arc::new(CodecState {
                master: master.clone(),
                key: OnceLock::new(),
            }),
        }
    }

    fn key(&self) -> Result<&DerivedKey, CursorError> {
        let state = self.state.state();
        if let Some(k) = state.key.get() {
            return Ok(k);
        }
        let key = state.master.try_derive_blocking("cursor").map_err(|e| {
            tracing::error!(error = %e, "cursor key unavailable");
            CursorError::KeyUnavailable
        })?;
        Ok(state.key.get_or_init(|| key))
    }

    /// # Panics
    /// If the master key cannot be read; [`CursorCodec::page`] reports that as an error.
    pub fn encode(&self, scope: &str, last_key: &HashMap<String, AttributeValue>) -> String {
        match self.key() {
            Ok(key) => Self::sign(key, scope, last_key),
            Err(e) => panic!("{e}"),
        }
    }

    fn sign(key: &DerivedKey, scope: &str, last_key: &HashMap<String, AttributeValue>) -> String {
        let k = last_key
            .iter()
            .filter_map(|(name, v)| match v {
                AttributeValue::S(s) => Some((name.clone(), KeyValue::S(s.clone()))),
                AttributeValue::N(n) => Some((name.clone(), KeyValue::N(n.clone()))),
                _ => None,
            })
            .collect();
        let json = serde_json::to_vec(&Payload {
            s: scope.to_owned(),
            k,
        })
        .unwrap_or_default();
        let tag = key.sign(&json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The `ExclusiveStartKey` for a request's optional `cursor`.
    pub fn start_key(
        &self,
        scope: &str,
        cursor: Option<&str>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, CursorError> {
        cursor.map(|c| self.decode(scope, c)).transpose()
    }

    /// One page from a Query's output: items mapped through `serde_dynamo`, and the
    /// `LastEvaluatedKey` signed as the next cursor.
    pub fn page<T: serde::de::DeserializeOwned>(
        &self,
        scope: &str,
        out: QueryOutput,
    ) -> Result<Page<T>, StoreError> {
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<Vec<T>, _>>()?;
        let next_cursor = match out.last_evaluated_key {
            Some(k) => {
                let key = self
                    .key()
                    .map_err(|e| StoreError::new("signing the next cursor", e))?;
                Some(Self::sign(key, scope, &k))
            }
            None => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub fn decode(
        &self,
        scope: &str,
        cursor: &str,
    ) -> Result<HashMap<String, AttributeValue>, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let (body, tag) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CursorError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CursorError::Malformed)?;
        if !self.key()?.verify(&json, &tag) {
            return Err(CursorError::BadSignature);
        }
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| CursorError::Malformed)?;
        if payload.s != scope {
            return Err(CursorError::WrongScope);
        }
        Ok(payload
            .k
            .into_iter()
            .map(|(name, v)| {
                let v = match v {
                    KeyValue::S(s) => AttributeValue::S(s),
                    KeyValue::N(n) => AttributeValue::N(n),
                };
                (name, v)
            })
            .collect())
    }
}

/// `limit` query parameter: 1–100, default 25.
pub fn parse_limit(raw: Option<&str>) -> Result<i32, FieldError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<i32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(FieldError::new(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

/// One page of results, the shape every list endpoint answers with.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(secret: &[u8]) -> CursorCodec {
        CursorCodec::new(&MasterKey::from_bytes(secret.to_vec()))
    }

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S("USER#1".into())),
            ("seq".to_owned(), AttributeValue::N("42".into())),
        ])
    }

    #[test]
    fn round_trips_within_its_scope() {
        let c = codec(b"a master key that is long enough!!");
        let cursor = c.encode("role:admin", &key());
        assert_eq!(c.decode("role:admin", &cursor).unwrap(), key());
    }

    #[test]
    fn rejects_another_querys_cursor() {
        let c = codec(b"a master key that is long enough!!");
        let cursor = c.encode("role:admin", &key());
        assert_eq!(
            c.decode("role:viewer", &cursor),
            Err(CursorError::WrongScope)
        );
    }

    #[test]
    fn rejects_another_deployments_cursor() {
        let cursor = codec(b"one master key that is long enough").encode("s", &key());
        assert_eq!(
            codec(b"another master key, long enough too").decode("s", &cursor),
            Err(CursorError::BadSignature)
        );
    }

    #[test]
    fn rejects_an_edited_payload() {
        let c = codec(b"a master key that is long enough!!");
        let cursor = c.encode("s", &key());
        let (body, tag) = cursor.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(body).unwrap();
        let pos = json.iter().position(|b| *b == b'1').unwrap();
        json[pos] = b'2';
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(json), tag);
        assert_eq!(c.decode("s", &forged), Err(CursorError::BadSignature));
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(parse_limit(None), Ok(25));
        assert_eq!(parse_limit(Some("100")), Ok(100));
        for bad in ["0", "101", "-1", "ten", "2.5", ""] {
            assert_eq!(parse_limit(Some(bad)).unwrap_err().field, "limit", "{bad}");
        }
    }

    /// A `LastEvaluatedKey` as DynamoDB returns it: string and number attributes.
    fn last_key() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
        let value = prop_oneof![
            "\\PC{0,60}".prop_map(AttributeValue::S),
            "-?[0-9]{1,20}(\\.[0-9]{1,5})?".prop_map(AttributeValue::N),
        ];
        proptest::collection::hash_map("[A-Za-z_][A-Za-z0-9_]{0,15}", value, 0..4)
    }

    proptest! {
        #[test]
        fn garbage_never_decodes_and_never_panics(s in "\\PC{0,300}") {
            let c = codec(b"a master key that is long enough!!");
            prop_assert!(c.decode("s", &s).is_err());
        }

        /// Near-valid: two base64url parts around a dot, as a forger would try.
        #[test]
        fn forged_cursor_shapes_never_decode(
            body in "[A-Za-z0-9_-]{0,200}",
            tag in "[A-Za-z0-9_-]{0,60}",
        ) {
            let c = codec(b"a master key that is long enough!!");
            let forged = format!("{body}.{tag}");
            prop_assert!(c.decode("s", &forged).is_err());
        }

        #[test]
        fn cursors_round_trip_within_their_scope(scope in "\\PC{0,80}", k in last_key()) {
            let c = codec(b"a master key that is long enough!!");
            let cursor = c.encode(&scope, &k);
            prop_assert!(cursor.len() <= MAX_CURSOR_LEN);
            prop_assert_eq!(c.start_key(&scope, Some(&cursor)), Ok(Some(k)));
        }

        #[test]
        fn a_cursor_never_continues_another_scope(
            a in "\\PC{0,40}",
            b in "\\PC{0,40}",
            k in last_key(),
        ) {
            prop_assume!(a != b);
            let c = codec(b"a master key that is long enough!!");
            prop_assert_eq!(c.decode(&b, &c.encode(&a, &k)), Err(CursorError::WrongScope));
        }

        /// Any one character changed (within the cursor alphabet) is refused.
        #[test]
        fn an_edited_cursor_is_refused(
            k in last_key(),
            at in any::<proptest::sample::Index>(),
            with in "[A-Za-z0-9_.-]",
        ) {
            let c = codec(b"a master key that is long enough!!");
            let cursor = c.encode("s", &k);
            let i = at.index(cursor.len());
            prop_assume!(cursor[i..i + 1] != with);
            let edited = format!("{}{with}{}", &cursor[..i], &cursor[i + 1..]);
            prop_assert!(c.decode("s", &edited).is_err());
        }

        #[test]
        fn over_long_cursors_are_malformed(s in "[A-Za-z0-9_.-]{2049,2200}") {
            let c = codec(b"a master key that is long enough!!");
            prop_assert_eq!(c.decode("s", &s), Err(CursorError::Malformed));
        }

        #[test]
        fn limits_are_whole_numbers_from_1_to_100(n in any::<i64>()) {
            let parsed = parse_limit(Some(&n.to_string()));
            if (1..=i64::from(MAX_LIMIT)).contains(&n) {
                prop_assert_eq!(parsed, Ok(n as i32));
            } else {
                prop_assert_eq!(parsed.unwrap_err().field, "limit");
            }
        }

        #[test]
        fn any_limit_text_is_in_range_or_names_limit(s in "\\PC{0,12}|[+-]?[0-9]{1,4}(\\.[0-9])?") {
            match parse_limit(Some(&s)) {
                Ok(n) => prop_assert!((1..=MAX_LIMIT).contains(&n)),
                Err(e) => prop_assert_eq!(e.field, "limit"),
            }
        }
    }
}
