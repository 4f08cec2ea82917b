//! What a function's answer means for its batch, as Lambda reads it for stream and queue
//! mappings with and without `ReportBatchItemFailures`.

use serde::Deserialize;

/// The verdict on a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record was processed.
    AllDone,
    /// The function reported these identifiers (sequence numbers or message ids) as
    /// failed; never empty, each one in the batch.
    ItemsFailed(Vec<String>),
    /// The function failed, or its report was malformed: the whole batch failed.
    BatchFailed,
}

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "batchItemFailures", default)]
    batch_item_failures: Option<Vec<Item>>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "itemIdentifier", default)]
    item_identifier: Option<String>,
}

/// `response` is the function's answer, `None` when the invocation failed; `ids` are
/// the batch's identifiers.
///
/// Lambda's rules: without `ReportBatchItemFailures` any answer is success. With it, an
/// empty or null answer or list is success, and invalid JSON, a missing, null or empty
/// `itemIdentifier`, or one not in the batch fails the whole batch.
pub fn judge(response: Option<&[u8]>, report: bool, ids: &[&str]) -> Verdict {
    let Some(body) = response else {
        return Verdict::BatchFailed;
    };
    if !report {
        return Verdict::AllDone;
    }
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Verdict::AllDone;
    }
    let Ok(report) = serde_json::from_slice::<Report>(trimmed) else {
        return Verdict::BatchFailed;
    };
    let items = report.batch_item_failures.unwrap_or_default();
    if items.is_empty() {
        return Verdict::AllDone;
    }
    let mut failed = Vec::with_capacity(items.len());
    for item in items {
        match item.item_identifier {
            Some(id) if ids.contains(&id.as_str()) => failed.push(id),
            _ => return Verdict::BatchFailed,
        }
    }
    Verdict::ItemsFailed(failed)
}

/// Why an invocation counts as failed (for the log and `last_error`), or `None`.
/// `error` is the function's error, if the invocation itself failed.
pub fn failure(error: Option<&serde_json::Value>, verdict: &Verdict) -> Option<String> {
    match (error, verdict) {
        (Some(e), _) => Some(e.to_string()),
        (None, Verdict::AllDone) => None,
        (None, Verdict::ItemsFailed(f)) => Some(format!("reported {} failed item(s)", f.len())),
        (None, Verdict::BatchFailed) => Some("malformed batchItemFailures".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: &[&str] = &["1", "2", "3"];

    fn j(body: &str) -> Verdict {
        judge(Some(body.as_bytes()), true, IDS)
    }

    #[test]
    fn a_failed_invocation_fails_the_batch() {
        assert_eq!(judge(None, true, IDS), Verdict::BatchFailed);
        assert_eq!(judge(None, false, IDS), Verdict::BatchFailed);
    }

    #[test]
    fn without_reporting_any_answer_is_success() {
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"2"}]}"#;
        assert_eq!(judge(Some(body), false, IDS), Verdict::AllDone);
    }

    #[test]
    fn empty_and_null_answers_are_success() {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert_eq!(j(body), Verdict::AllDone, "{body}");
        }
    }

    #[test]
    fn reported_items_fail_alone() {
        assert_eq!(
            j(r#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#),
            Verdict::ItemsFailed(vec!["3".into(), "2".into()])
        );
    }

    #[test]
    fn malformed_reports_fail_the_whole_batch() {
        for body in [
            "not json",
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"id":"2"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#,
        ] {
            assert_eq!(j(body), Verdict::BatchFailed, "{body}");
        }
    }
}
