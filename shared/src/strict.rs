//! Body shapes exactly as documented: a body or a nested object that is not a JSON
//! object, and an optional field sent as `null`, are wrong types (422), not "absent".
//! serde's derive alone accepts a struct written as an array (`[null, null]`) and
//! `null` for every `Option`. Every capability's request bodies use these.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{DeserializeOwned, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `T` read only from a JSON object (`T` derives `Deserialize`, with
/// `deny_unknown_fields`). Field paths in errors are kept.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Object)
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// For `#[serde(deserialize_with = "object")]` on a required nested object (also a field
/// of an enum variant): an array or `null` is an error.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// For `#[serde(default, deserialize_with = "some_object")]` on an `Option` of a
/// nested object: absent is `None`; `null` or an array is an error.
pub fn some_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    object(d).map(Some)
}

/// For `#[serde(default, deserialize_with = "some_objects")]` on an optional list of
/// objects: absent is `None`; `null`, or an element that is not an object, is an error
/// (the element's index is kept in the error's path).
pub fn some_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Vec::<Object<T>>::deserialize(d).map(|items| Some(items.into_iter().map(|o| o.0).collect()))
}

/// For `#[serde(default, deserialize_with = "some")]` on an optional field: absent is
/// `None`; `null` is an error naming the type expected.
pub fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// [`some`] for a unit-variant enum. serde_json reads `null` where an enum is expected
/// as a syntax error (a 400 "malformed JSON"); read as a string first, it is a wrong type
/// (422) like any other field.
pub fn some_enum<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let raw = String::deserialize(d)?;
    T::deserialize(StrDeserializer::<serde::de::value::Error>::new(&raw))
        .map(Some)
        .map_err(D::Error::custom)
}

/// A field of a partial update (`PATCH`): absent (leave it), explicitly `null`, or a
/// value. Each capability decides what `null` means for each field: refused where the
/// field is required, "clear it" where it is optional. Use with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PatchField<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PatchField<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => PatchField::Null,
            Some(v) => PatchField::Value(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default, deserialize_with = "some")]
        name: Option<String>,
        #[serde(default, deserialize_with = "some_object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "some_objects")]
        list: Option<Vec<Inner>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default, deserialize_with = "some")]
        n: Option<u32>,
    }

    #[test]
    fn a_patch_keeps_absent_null_and_a_value_apart() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Patch {
            #[serde(default)]
            name: PatchField<String>,
        }
        let read = |body: &str| serde_json::from_str::<Patch>(body).map(|p| p.name);
        assert_eq!(read("{}").unwrap(), PatchField::Absent);
        assert_eq!(read(r#"{"name": null}"#).unwrap(), PatchField::Null);
        assert_eq!(
            read(r#"{"name": "Ada"}"#).unwrap(),
            PatchField::Value("Ada".to_owned())
        );
        assert!(
            read(r#"{"name": 7}"#).is_err(),
            "a wrong type is still an error"
        );
    }

    #[test]
    fn only_the_documented_shape_is_accepted() {
        // (body, status, field named)
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{}"#, 200, None),
            (r#"{"name": "a", "inner": {"n": 1}}"#, 200, None),
            (r#"[null, null]"#, 422, Some("body")),
            (r#"[]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (r#""text""#, 422, Some("body")),
            (r#"{"name": null}"#, 422, Some("name")),
            (r#"{"name": 1}"#, 422, Some("name")),
            (r#"{"inner": null}"#, 422, Some("inner")),
            (r#"{"inner": [1]}"#, 422, Some("inner")),
            (r#"{"inner": {"n": null}}"#, 422, Some("inner.n")),
            (r#"{"inner": {"n": "1"}}"#, 422, Some("inner.n")),
            (r#"{"inner": {"m": 1}}"#, 400, Some("inner.m")),
            (r#"{"other": 1}"#, 400, Some("other")),
            (r#"{"list": []}"#, 200, None),
            (r#"{"list": [{"n": 1}, {}]}"#, 200, None),
            (r#"{"list": null}"#, 422, Some("list")),
            (r#"{"list": {"n": 1}}"#, 422, Some("list")),
            (r#"{"list": [{}, [1]]}"#, 422, Some("list[1]")),
            (r#"{"list": [{"n": null}]}"#, 422, Some("list[0].n")),
            (r#"{"list": [{"n": 3.0}]}"#, 200, None),
        ];
        for (body, status, field) in cases {
            match parse_json::<Object<Outer>>(body.as_bytes()) {
                Ok(_) => assert_eq!(*status, 200, "{body}"),
                Err(p) => {
                    assert_eq!(p.status, *status, "{body}");
                    assert_eq!(p.errors.first().map(|e| e.field.as_str()), *field, "{body}");
                }
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Tagged {
        Boxed {
            #[serde(deserialize_with = "object")]
            inner: Inner,
        },
    }

    #[test]
    fn a_required_object_refuses_an_array_even_in_a_tagged_enum() {
        let cases: &[(&str, u16)] = &[
            (r#"{"type": "boxed", "inner": {"n": 1}}"#, 200),
            (r#"{"type": "boxed", "inner": {"n": 1.0}}"#, 200),
            (r#"{"type": "boxed", "inner": [1]}"#, 422),
            (r#"{"type": "boxed", "inner": null}"#, 422),
            (r#"{"type": "boxed"}"#, 422),
            // A tagged enum alone reads `[tag, fields...]` from an array.
            (r#"["boxed", {"n": 1}]"#, 422),
        ];
        for (body, status) in cases {
            match parse_json::<Object<Tagged>>(body.as_bytes()) {
                Ok(_) => assert_eq!(*status, 200, "{body}"),
                Err(p) => assert_eq!(p.status, *status, "{body}"),
            }
        }
    }

    mod properties {
        use super::{Inner, Object, Outer};
        use crate::extract::parse_json;
        use proptest::prelude::*;
        use serde_json::Value;

        /// JSON of any shape, with the documented names (and one other) as keys.
        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                (-3i64..5).prop_map(Value::from),
                Just(Value::from(u64::from(u32::MAX) + 1)),
                prop_oneof![Just(3.0), Just(2.5), Just(-1.0), Just(1e20)].prop_map(Value::from),
                "[a-z]{0,3}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    proptest::collection::btree_map("name|inner|list|n|other", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A JSON number `u32` reads: a whole number in range (`3.0` is the integer 3).
        fn is_u32(v: &Value) -> bool {
            v.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f))
        }

        fn is_inner(v: &Value) -> bool {
            v.as_object()
                .is_some_and(|m| m.iter().all(|(k, v)| k == "n" && is_u32(v)))
        }

        /// The documented shape of `Outer`, null nowhere.
        fn is_outer(v: &Value) -> bool {
            v.as_object().is_some_and(|m| {
                m.iter().all(|(k, v)| match k.as_str() {
                    "name" => v.is_string(),
                    "inner" => is_inner(v),
                    "list" => v.as_array().is_some_and(|l| l.iter().all(is_inner)),
                    _ => false,
                })
            })
        }

        proptest! {
            /// A body is read exactly when it has the documented shape; anything else is
            /// a 400 (an unknown field, named) or a 422, never a panic.
            #[test]
            fn only_the_documented_shape_is_read(v in json()) {
                let text = v.to_string();
                match parse_json::<Object<Outer>>(text.as_bytes()) {
                    Ok(_) => prop_assert!(is_outer(&v), "{}", text),
                    Err(p) => {
                        prop_assert!(!is_outer(&v), "{}: {}", text, p);
                        prop_assert!(p.status == 400 || p.status == 422, "{}: {}", text, p);
                        if p.status == 400 {
                            prop_assert_eq!(p.slug(), "unknown-field");
                            let field = p.errors[0].field.rsplit('.').next().unwrap_or_default();
                            prop_assert!(["n", "name", "inner", "list", "other"].contains(&field), "{}", field);
                        } else {
                            prop_assert!(!p.errors.is_empty());
                        }
                    }
                }
                // An `Inner` alone follows the same rule.
                let inner = parse_json::<Object<Inner>>(text.as_bytes());
                prop_assert_eq!(inner.is_ok(), is_inner(&v), "{}", text);
            }
        }
    }
}
