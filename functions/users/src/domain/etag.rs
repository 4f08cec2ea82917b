//! Versions on the wire: the ETag a user is sent with and the `If-Match` that names it.

/// `If-Match` precondition: the version a client last saw. Accepts the ETag as we send
/// it (`"3"`), weak (`W/"3"`) or bare (`3`). Only digits name a version: `"+3"` is
/// another entity tag than `"3"` (RFC 9110 compares them as opaque strings).
pub fn parse_if_match(raw: &str) -> Option<u64> {
    let v = raw.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(parse_if_match("\"3\""), Some(3));
        assert_eq!(parse_if_match("W/\"3\""), Some(3));
        assert_eq!(parse_if_match("3"), Some(3));
        assert_eq!(parse_if_match("*"), None);
        assert_eq!(parse_if_match("\"x\""), None);
        assert_eq!(parse_if_match("\"+3\""), None);
        assert_eq!(etag(7), "\"7\"");
    }
}
