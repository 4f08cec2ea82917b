//! Time as aloft stores and shows it: UTC, RFC 3339, millisecond precision.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    // Millisecond precision keeps stored timestamps short and sortable as strings.
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

/// RFC 3339 with a fixed width (`2026-11-24T23:44:13.123Z`) so strings sort by time.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_times_sort_like_the_times() {
        let a = time::macros::datetime!(2026-01-02 03:04:05.006 UTC);
        let b = time::macros::datetime!(2026-01-02 03:04:05.060 UTC);
        assert_eq!(rfc3339(a), "2026-01-02T03:04:05.006Z");
        assert!(rfc3339(a) < rfc3339(b));
        assert_eq!(parse_rfc3339(&rfc3339(b)), Some(b));
    }
}
