//! Request extractors that turn every kind of unreadable input into a problem naming it:
//! wrong content type (415), oversized body (413), invalid UTF-8 or malformed JSON (400),
//! unknown fields (400), wrong types and missing fields (422).

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use http::header;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// Largest JSON body aloft accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of type `T` (declare `T` with `#[serde(deny_unknown_fields)]`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .detail("send the body as JSON with `Content-Type: application/json`"));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                Problem::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                )
                .detail(format!("the body must be at most {MAX_BODY_BYTES} bytes"))
            })?;
        if !is_object_or_malformed(&bytes) {
            // Every documented body is an object; serde alone would read a struct from
            // an array (`[null, null]`) or take `null` for it.
            return Err(Problem::validation(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// False only for well-formed JSON that is not an object; malformed bodies go on to
/// [`parse_json`], which names what is wrong with them.
fn is_object_or_malformed(bytes: &[u8]) -> bool {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => true,
        Some(_) => serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err(),
    }
}

/// Parses a JSON document into `T`, mapping each failure to the problem a caller can act on.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(Problem::bad_request(
            "invalid-utf8",
            "the body is not valid UTF-8",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| {
                Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
            })?;
            Ok(value)
        }
        // JSON has one number type: `12957.0` is the integer 12957 to JSON Schema (and to
        // the fuzzers and clients that write it so). Only on that failure is the body read
        // again with whole floats made integers; the usual path parses once.
        Err(e) if is_whole_float_for_integer(&e) => {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
            })?;
            integers_from_whole_floats(&mut value);
            serde_path_to_error::deserialize(value).map_err(json_problem)
        }
        Err(e) => Err(json_problem(e)),
    }
}

fn is_whole_float_for_integer(err: &serde_path_to_error::Error<serde_json::Error>) -> bool {
    let message = err.inner().to_string();
    let Some(rest) = message.strip_prefix("invalid type: floating point `") else {
        return false;
    };
    let number = rest.split('`').next().unwrap_or_default();
    number.parse::<f64>().is_ok_and(as_integer_is_exact)
        && ["expected i", "expected u"]
            .iter()
            .any(|p| rest.contains(p))
}

/// Whether `f` is a whole number that an `i64` or `u64` holds exactly.
fn as_integer_is_exact(f: f64) -> bool {
    f.fract() == 0.0 && f >= i64::MIN as f64 && f < u64::MAX as f64
}

fn integers_from_whole_floats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if as_integer_is_exact(f) {
                    *n = if f < 0.0 {
                        (f as i64).into()
                    } else {
                        (f as u64).into()
                    };
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integers_from_whole_floats),
        Value::Object(fields) => fields.values_mut().for_each(integers_from_whole_floats),
        _ => {}
    }
}

fn json_problem(err: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return Problem::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {inner}"),
        );
    }
    let message = strip_position(&inner.to_string());
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        // The path already ends at the unknown field itself.
        let field = if path == "." { field.to_owned() } else { path };
        return Problem::bad_request("unknown-field", format!("unknown field `{field}`"))
            .with_errors(vec![FieldError::new(field, "is not a known field")]);
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return Problem::validation(vec![FieldError::new(
            join_path(&path, field),
            "is required",
        )]);
    }
    let field = if path == "." { "body".to_owned() } else { path };
    Problem::validation(vec![FieldError::new(field, message)])
}

/// serde_json appends " at line 1 column 17"; the field name says more to a caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." || parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn is_json(content_type: Option<&http::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The longest path parameter any route takes: ids are UUIDs or short tokens, names at
/// most 128 characters.
pub const MAX_PATH_PARAM_CHARS: usize = 128;

/// Route layer (`Router::route_layer(from_fn(bounded_path_params))`): a path parameter
/// longer than [`MAX_PATH_PARAM_CHARS`] is a 422 naming it,
/// before any store is asked (DynamoDB refuses a key over 1 KiB with an error that would
/// otherwise be a 500).
pub async fn bounded_path_params(
    params: axum::extract::RawPathParams,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let errors: Vec<FieldError> = params
        .iter()
        .filter(|(_, v)| v.chars().count() > MAX_PATH_PARAM_CHARS)
        .map(|(name, _)| {
            FieldError::new(
                name,
                format!("must be at most {MAX_PATH_PARAM_CHARS} characters"),
            )
        })
        .collect();
    if errors.is_empty() {
        next.run(req).await
    } else {
        Problem::validation(errors).into_response()
    }
}

/// Query parameters of type `T`; unknown or repeated-but-single parameters are a 400
/// naming them. Declare fields as `Option<String>` and validate in `domain`, so a bad
/// value becomes a 422 naming the field.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                Err(Problem::bad_request("invalid-query", detail))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        amount: Option<i64>,
        card: Option<Card>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Card {
        number: String,
    }

    fn err(json: &[u8]) -> Problem {
        parse_json::<Body>(json).unwrap_err()
    }

    #[test]
    fn each_kind_of_bad_body_gets_its_own_problem() {
        let cases: &[(&[u8], u16, &str, Option<&str>)] = &[
            (b"{", 400, "malformed-json", None),
            (b"{\"name\":\"a\"} trailing", 400, "malformed-json", None),
            (b"\xff\xfe", 400, "invalid-utf8", None),
            (
                b"{\"name\":\"a\",\"nmae\":1}",
                400,
                "unknown-field",
                Some("nmae"),
            ),
            (
                b"{\"name\":\"a\",\"card\":{\"number\":\"1\",\"cvc\":\"1\"}}",
                400,
                "unknown-field",
                Some("card.cvc"),
            ),
            (b"{\"amount\":1}", 422, "validation", Some("name")),
            (
                b"{\"name\":\"a\",\"amount\":1.5}",
                422,
                "validation",
                Some("amount"),
            ),
            (
                b"{\"name\":\"a\",\"amount\":\"1\"}",
                422,
                "validation",
                Some("amount"),
            ),
            (b"null", 422, "validation", Some("body")),
            (b"[]", 422, "validation", Some("body")),
            (
                b"{\"name\":\"a\",\"amount\":1e30}",
                422,
                "validation",
                Some("amount"),
            ),
            (
                b"{\"name\":\"a\",\"amount\":2.0,\"nmae\":1}",
                400,
                "unknown-field",
                Some("nmae"),
            ),
        ];
        for (body, status, slug, field) in cases {
            let p = err(body);
            assert_eq!(
                (p.status, p.slug()),
                (*status, *slug),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                p.errors.first().map(|e| e.field.as_str()),
                *field,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_whole_number_written_as_a_float_is_an_integer() {
        let body: Body = parse_json(b"{\"name\":\"a\",\"amount\":12957.0}").unwrap();
        assert_eq!(body.amount, Some(12957));
        let body: Body = parse_json(b"{\"name\":\"a\",\"amount\":-3.0}").unwrap();
        assert_eq!(body.amount, Some(-3));
        let p = err(b"{\"name\":\"a\",\"amount\":1.5}");
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "amount"));
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert!(is_object_or_malformed(b" {\"a\": 1}"));
        assert!(
            is_object_or_malformed(b"[1, 2"),
            "malformed: parse_json names it"
        );
        for body in [&b"[null, null]"[..], b"null", b"\"text\"", b"12", b" true"] {
            assert!(
                !is_object_or_malformed(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn json_content_types() {
        let ok = |s: &'static str| is_json(Some(&http::HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!is_json(None));
    }

    mod properties {
        use super::super::*;
        use super::Body;
        use proptest::prelude::*;
        use serde::Deserialize;

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Params {
            limit: Option<String>,
            cursor: Option<String>,
        }

        /// The problem `ApiQuery<Params>` answers for `/?{query}`, if any.
        fn query(query: &str) -> Option<Result<Params, Problem>> {
            let request = http::Request::builder()
                .uri(format!("/?{query}"))
                .body(())
                .ok()?;
            let (mut parts, ()) = request.into_parts();
            let result = futures::executor::block_on(ApiQuery::<Params>::from_request_parts(
                &mut parts,
                &(),
            ));
            Some(result.map(|ApiQuery(p)| p))
        }

        proptest! {
            /// Any bytes at all: a value, or a 400/422 problem; never a panic.
            #[test]
            fn any_body_is_a_value_or_a_problem(
                bytes in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..200),
                    "\\{(\"(name|amount|card|number|x)\" ?: ?(\"\\PC{0,8}\"|-?[0-9]{1,22}(\\.[0-9]{1,3})?|null|\\[\\]|\\{\\}|true),?){0,4}\\}?"
                        .prop_map(String::into_bytes),
                ],
            ) {
                if let Err(p) = parse_json::<Body>(&bytes) {
                    prop_assert!(p.status == 400 || p.status == 422, "{}", p);
                    if p.status == 422 {
                        prop_assert!(!p.errors.is_empty());
                    }
                }
            }

            #[test]
            fn well_formed_bodies_parse(name in "\\PC{0,40}", amount in proptest::option::of(any::<i64>())) {
                let json = serde_json::json!({ "name": name, "amount": amount });
                let body: Body = parse_json(json.to_string().as_bytes()).unwrap();
                prop_assert_eq!(body.name, name);
                prop_assert_eq!(body.amount, amount);
            }

            /// An unknown field is a 400 naming exactly that field.
            #[test]
            fn unknown_fields_are_named(field in "[a-z_]{1,12}") {
                prop_assume!(!["name", "amount", "card"].contains(&field.as_str()));
                let json = format!("{{\"name\":\"a\",\"{field}\":1}}");
                let p = parse_json::<Body>(json.as_bytes()).unwrap_err();
                prop_assert_eq!((p.status, p.slug()), (400, "unknown-field"));
                prop_assert_eq!(&p.errors[0].field, &field);
            }

            #[test]
            fn content_types_are_json_by_their_essence(
                ct in "\\PC{0,40}|[aA][pP][pP][lL][iI][cC][aA][tT][iI][oO][nN]/[a-zA-Z+-]{0,12}[jJ][sS][oO][nN] ?(;[ -~]{0,10})?",
            ) {
                if let Ok(v) = http::HeaderValue::from_str(&ct) {
                    // Only a visible-ASCII value is a media type at all.
                    let essence = v.to_str().ok().map(|ct| {
                        ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
                    });
                    let expected = essence.is_some_and(|e| {
                        e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
                    });
                    prop_assert_eq!(is_json(Some(&v)), expected);
                }
            }

            /// Any query string: the documented parameters, or a 400 `invalid-query`.
            #[test]
            fn any_query_string_is_parameters_or_a_400(
                q in "[A-Za-z0-9=&%_.~+;-]{0,60}|(limit|cursor|x)=[A-Za-z0-9%]{0,5}(&(limit|cursor|x)=[A-Za-z0-9%]{0,5}){0,3}",
            ) {
                match query(&q) {
                    None | Some(Ok(_)) => {}
                    Some(Err(p)) => prop_assert_eq!((p.status, p.slug()), (400, "invalid-query")),
                }
            }

            #[test]
            fn known_query_parameters_round_trip(limit in "[A-Za-z0-9._~-]{0,10}", cursor in "[A-Za-z0-9._~-]{0,100}") {
                let p = query(&format!("limit={limit}&cursor={cursor}")).unwrap().unwrap();
                prop_assert_eq!(p.limit, Some(limit));
                prop_assert_eq!(p.cursor, Some(cursor));
            }
        }
    }
}
