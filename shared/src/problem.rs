//! RFC 9457 `application/problem+json` errors with stable `type` URIs.
//!
//! Every error that leaves an aloft function is a [`Problem`]. The `type` is a URN
//! (`urn:aloft:problem:<slug>`) that clients may match on; `title` is the same for every
//! occurrence of a type, `detail` explains this occurrence, `errors` names each bad field.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";
const TYPE_PREFIX: &str = "urn:aloft:problem:";

/// One invalid field: a JSON-pointer-like path (`email`, `method.card.number`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Serialized as the `type` URI; kept as the bare slug (a literal) so a `Problem`
    /// stays small enough to return by value.
    #[serde(rename = "type", serialize_with = "serialize_type")]
    slug: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of type `urn:aloft:problem:{slug}`.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str) -> Self {
        Self {
            slug,
            title,
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn slug(&self) -> &'static str {
        self.slug
    }

    /// The `type` URI clients match on.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_PREFIX}{}", self.slug)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    // The problems every capability shares. Capability-specific ones are built with
    // `Problem::new` next to the error enum they belong to.

    /// 422: the body parsed but fields break the rules; each one is named.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request fields",
        )
        .detail(detail)
        .with_errors(errors)
    }

    /// 400: the request could not be read at all.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, "Bad request").detail(detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized").detail(detail)
    }

    pub fn insufficient_scope(required: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "Insufficient scope",
        )
        .detail(format!(
            "this route requires the `{required}` scope (or `admin`)"
        ))
    }

    /// 500 without internals: the cause goes to the log, never to the caller.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .detail("the request failed on our side; it is safe to retry")
    }
}

fn serialize_type<S: serde::Serializer>(slug: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{TYPE_PREFIX}{slug}"))
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.status)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(r: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn validation_problem_names_every_field() {
        let p = Problem::validation(vec![
            FieldError::new("email", "is not an email"),
            FieldError::new("role", "unknown"),
        ]);
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let v = body_json(r).await;
        assert_eq!(v["type"], "urn:aloft:problem:validation");
        assert_eq!(v["errors"][0]["field"], "email");
        assert_eq!(v["errors"][1]["field"], "role");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("email: is not an email")
        );
    }

    #[tokio::test]
    async fn internal_problem_hides_the_cause() {
        let v = body_json(Problem::internal().into_response()).await;
        assert_eq!(v["status"], 500);
        assert!(v.get("errors").is_none());
    }
}
