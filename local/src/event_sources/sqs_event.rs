//! The SQS event Lambda invokes a function with, and which messages of a batch are
//! deleted afterwards. Pure: built from what `ReceiveMessage` returned.

use aws_sdk_sqs::types::Message;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::response::Verdict;

/// One message as a record of the event.
pub fn record(m: &Message, queue_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
        .collect();
    let message_attributes: Map<String, Value> = m
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, a)| {
            let mut v = Map::new();
            if let Some(s) = a.string_value() {
                v.insert("stringValue".into(), json!(s));
            }
            if let Some(b) = a.binary_value() {
                v.insert("binaryValue".into(), json!(STANDARD.encode(b.as_ref())));
            }
            v.insert("stringListValues".into(), json!(a.string_list_values()));
            let binaries: Vec<_> = a
                .binary_list_values()
                .iter()
                .map(|b| STANDARD.encode(b.as_ref()))
                .collect();
            v.insert("binaryListValues".into(), json!(binaries));
            v.insert("dataType".into(), json!(a.data_type()));
            (name.clone(), Value::Object(v))
        })
        .collect();
    let mut r = json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body().unwrap_or_default(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    });
    if let Some(md5) = m.md5_of_message_attributes() {
        r["md5OfMessageAttributes"] = json!(md5);
    }
    r
}

pub fn event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    json!({ "Records": messages.iter().map(|m| record(m, queue_arn, region)).collect::<Vec<_>>() })
}

/// The indexes of the messages to delete: all of them on success, those not reported on
/// a partial failure, none when the batch failed (they reappear after the visibility
/// timeout, and SQS's redrive policy moves them to the dead-letter queue in the end).
pub fn to_delete(ids: &[&str], verdict: &Verdict) -> Vec<usize> {
    match verdict {
        Verdict::AllDone => (0..ids.len()).collect(),
        Verdict::ItemsFailed(failed) => (0..ids.len())
            .filter(|&i| !failed.iter().any(|f| f == ids[i]))
            .collect(),
        Verdict::BatchFailed => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

    fn message(id: &str) -> Message {
        Message::builder()
            .message_id(id)
            .receipt_handle(format!("rh-{id}"))
            .body(r#"{"id":"evt-1"}"#)
            .md5_of_body("0123456789abcdef0123456789abcdef")
            .md5_of_message_attributes("fedcba9876543210fedcba9876543210")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "type",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("user.created")
                    .build()
                    .unwrap(),
            )
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_smithy_types::Blob::new(b"hi".to_vec()))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[test]
    fn the_event_is_what_aws_lambda_events_reads() {
        let arn = "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue";
        let json = event(&[message("m1"), message("m2")], arn, "us-east-1");
        let parsed: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json).unwrap();
        let m = &parsed.records[0];
        assert_eq!(m.message_id.as_deref(), Some("m1"));
        assert_eq!(m.receipt_handle.as_deref(), Some("rh-m1"));
        assert_eq!(m.body.as_deref(), Some(r#"{"id":"evt-1"}"#));
        assert_eq!(m.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            m.message_attributes["type"].string_value.as_deref(),
            Some("user.created")
        );
        assert_eq!(
            m.message_attributes["type"].data_type.as_deref(),
            Some("String")
        );
        assert_eq!(
            m.message_attributes["blob"]
                .binary_value
                .as_ref()
                .map(|b| b.0.clone()),
            Some(b"hi".to_vec())
        );
        assert_eq!(m.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(m.event_source_arn.as_deref(), Some(arn));
        assert_eq!(m.aws_region.as_deref(), Some("us-east-1"));
        assert!(m.md5_of_body.is_some() && m.md5_of_message_attributes.is_some());
        assert_eq!(parsed.records.len(), 2);
    }

    #[test]
    fn only_unreported_messages_are_deleted() {
        let ids = ["a", "b", "c"];
        assert_eq!(to_delete(&ids, &Verdict::AllDone), vec![0, 1, 2]);
        assert_eq!(
            to_delete(&ids, &Verdict::ItemsFailed(vec!["b".into()])),
            vec![0, 2]
        );
        assert!(to_delete(&ids, &Verdict::BatchFailed).is_empty());
    }
}
