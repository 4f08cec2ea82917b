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

/// An RFC 3339 time whose UTC instant is itself RFC 3339 (years 0000–9999). A time such
/// as `0000-01-01T00:00:00+01:00` or `9999-12-31T23:59:59-01:00` parses, but lies outside
/// that range in UTC: [`rfc3339`] could not show it (or would panic converting it).
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()?
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
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

    #[test]
    fn times_outside_the_utc_years_0000_to_9999_are_refused() {
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00+00:59"), None);
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59-01:00"), None);
        let last = parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
        let first = parse_rfc3339("0000-01-01T01:00:00+01:00").unwrap();
        assert_eq!(rfc3339(first), "0000-01-01T00:00:00.000Z");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// RFC 3339 shapes, including edge years, offsets, lower-case separators and
        /// out-of-range fields.
        const NEAR_RFC3339: &str = "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})";

        proptest! {
            /// Whatever a caller sends that parses can be shown again as aloft's fixed-width
            /// UTC form, and that form parses back to the same instant (to the millisecond).
            #[test]
            fn parsed_times_format_and_parse_back(
                s in prop_oneof![
                    NEAR_RFC3339,
                    "\\PC{0,40}",
                    "(0000|9999)-(01-01|12-31)T(00:00|23:59):(00|59|60)(\\.999)?([+-](00|23):(00|59)|Z)",
                ],
            ) {
                if let Some(t) = parse_rfc3339(&s) {
                    let shown = rfc3339(t);
                    prop_assert_eq!(shown.len(), 24, "{}", shown);
                    let back = parse_rfc3339(&shown);
                    prop_assert_eq!(
                        back.map(|b| b.unix_timestamp_nanos()),
                        Some(t.unix_timestamp_nanos().div_euclid(1_000_000) * 1_000_000),
                        "{} -> {}", s, shown
                    );
                }
            }

            #[test]
            fn formatted_times_sort_like_the_times(a in 0i64..253_402_300_799, b in 0i64..253_402_300_799, ms in 0u16..1000) {
                let t = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap()
                    + time::Duration::milliseconds(i64::from(ms));
                prop_assert_eq!(a.cmp(&b), rfc3339(t(a)).cmp(&rfc3339(t(b))));
            }
        }
    }
}
