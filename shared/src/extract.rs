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
        parse_json(&bytes).map(ApiJson)
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
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_problem)?;
    de.end().map_err(|e| {
        Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
    })?;
    Ok(value)
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
    fn json_content_types() {
        let ok = |s: &'static str| is_json(Some(&http::HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!is_json(None));
    }
}
