//! Payload format 2.0 both ways: request headers, cookies and query string into the
//! event, and the function's answer back into an HTTP response.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// Header map → payload 2.0 `headers` (lower-case names, repeated values comma-joined)
/// and `cookies`.
pub(super) fn event_headers(headers: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut out: Map<String, Value> = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        match out.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    (out, cookies)
}

pub(super) fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        match out.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    out
}

/// A payload 2.0 function response as HTTP. Without `statusCode`, the gateway treats the
/// whole output as a 200 JSON body.
pub(super) fn http_response(body: &[u8]) -> Option<Response> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let Some(status) = value.get("statusCode").and_then(Value::as_u64) else {
        return Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_vec(),
            )
                .into_response(),
        );
    };
    let status = StatusCode::from_u16(u16::try_from(status).ok()?).ok()?;
    let mut headers = HeaderMap::new();
    if let Some(h) = value.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(&v).ok()?,
            );
        }
    }
    if let Some(m) = value.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in m {
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                headers.append(
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                );
            }
        }
    }
    for c in value
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        headers.append(header::SET_COOKIE, HeaderValue::from_str(c).ok()?);
    }
    let text = value
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(text).ok()?
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = (status, bytes).into_response();
    response.headers_mut().extend(headers);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_responses_become_http() {
        let r = http_response(br#"{"statusCode":201,"headers":{"location":"/users/1"},"body":"{}","isBase64Encoded":false}"#).unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["location"], "/users/1");
        let r = http_response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(http_response(b"not json").is_none());
    }
}
