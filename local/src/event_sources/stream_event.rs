//! The JSON a stream mapping sends: the DynamoDB Streams event Lambda invokes a function
//! with, and the invocation record it sends to an `OnFailure` destination for records it
//! gave up on. Pure: built from what `GetRecords` returned.

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::stream_plan::Condition;

/// One record read from a shard, ready to be sent.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub sequence: String,
    /// When DynamoDB wrote it (to the second), for the record age and failure records.
    pub created: Option<OffsetDateTime>,
    /// The event record, as in `{"Records": [...]}`.
    pub json: Value,
}

impl StreamRecord {
    /// A record as Lambda passes it on: the stream's own fields, plus `eventSourceARN`.
    pub fn from_sdk(r: &Record, region: &str, stream_arn: &str) -> Self {
        let change = r.dynamodb();
        let created = change
            .and_then(|c| c.approximate_creation_date_time())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
        let sequence = change
            .and_then(|c| c.sequence_number())
            .unwrap_or_default()
            .to_owned();
        let mut dynamodb = Map::new();
        if let Some(t) = created {
            dynamodb.insert(
                "ApproximateCreationDateTime".into(),
                json!(t.unix_timestamp()),
            );
        }
        if let Some(c) = change {
            for (key, image) in [
                ("Keys", c.keys()),
                ("NewImage", c.new_image()),
                ("OldImage", c.old_image()),
            ] {
                if let Some(image) = image {
                    dynamodb.insert(key.into(), item(image));
                }
            }
            dynamodb.insert("SequenceNumber".into(), json!(sequence));
            if let Some(size) = c.size_bytes() {
                dynamodb.insert("SizeBytes".into(), json!(size));
            }
            if let Some(view) = c.stream_view_type() {
                dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
            }
        }
        let mut record = Map::new();
        record.insert("eventID".into(), json!(r.event_id().unwrap_or_default()));
        record.insert(
            "eventName".into(),
            json!(r.event_name().map(|n| n.as_str()).unwrap_or_default()),
        );
        record.insert(
            "eventVersion".into(),
            json!(r.event_version().unwrap_or("1.1")),
        );
        record.insert(
            "eventSource".into(),
            json!(r.event_source().unwrap_or("aws:dynamodb")),
        );
        record.insert("awsRegion".into(), json!(r.aws_region().unwrap_or(region)));
        record.insert("dynamodb".into(), Value::Object(dynamodb));
        if let Some(who) = r.user_identity() {
            // TTL deletions say who removed the item.
            record.insert(
                "userIdentity".into(),
                json!({"type": who.r#type(), "principalId": who.principal_id()}),
            );
        }
        record.insert("eventSourceARN".into(), json!(stream_arn));
        Self {
            sequence,
            created,
            json: Value::Object(record),
        }
    }
}

/// An item in DynamoDB's JSON (`{"S": "…"}`, `{"N": "1"}`, binary as base64), the way
/// Lambda writes images into stream events.
pub fn item(map: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
}

fn attribute(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| json!(STANDARD.encode(b.as_ref()));
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        // A type newer than this SDK: nothing sensible to pass on.
        _ => json!({ "NULL": true }),
    }
}

/// The event a function is invoked with.
pub fn event(records: &[StreamRecord]) -> Value {
    json!({ "Records": records.iter().map(|r| &r.json).collect::<Vec<_>>() })
}

/// What the batch was given up on, and where it was.
pub struct Discarded<'a> {
    pub function_arn: &'a str,
    pub stream_arn: &'a str,
    pub shard_id: &'a str,
    pub records: &'a [StreamRecord],
    pub condition: Condition,
    pub invocations: u32,
    pub function_error: bool,
}

/// Lambda's invocation record for discarded stream records: their positions (not their
/// data), so an operator can read them again while the stream retains them.
pub fn invocation_record(d: &Discarded, now: OffsetDateTime) -> Value {
    let second = |t: Option<OffsetDateTime>| {
        let t = t.unwrap_or(now).replace_nanosecond(0).unwrap_or(now);
        t.format(&Rfc3339).unwrap_or_default()
    };
    let first = d.records.first();
    let last = d.records.last();
    let mut response = json!({"statusCode": 200, "executedVersion": "$LATEST"});
    if d.function_error {
        response["functionError"] = json!("Unhandled");
    }
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": d.function_arn,
            "condition": d.condition.as_str(),
            "approximateInvokeCount": d.invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": now.format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        )).unwrap_or_default(),
        "DDBStreamBatchInfo": {
            "shardId": d.shard_id,
            "startSequenceNumber": first.map(|r| r.sequence.as_str()).unwrap_or_default(),
            "endSequenceNumber": last.map(|r| r.sequence.as_str()).unwrap_or_default(),
            "approximateArrivalOfFirstRecord": second(first.and_then(|r| r.created)),
            "approximateArrivalOfLastRecord": second(last.and_then(|r| r.created)),
            "batchSize": d.records.len(),
            "streamArn": d.stream_arn,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamViewType};
    use std::collections::HashMap;

    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/OutboxTable/stream/2026-01-01T00:00:00.000";

    fn sdk_record(seq: &str) -> Record {
        let image = HashMap::from([
            ("id".to_owned(), AttributeValue::S("evt-1".into())),
            (
                "expires_at".to_owned(),
                AttributeValue::N("1700000000".into()),
            ),
            (
                "raw".to_owned(),
                AttributeValue::B(aws_smithy_types::Blob::new(b"hi".to_vec())),
            ),
            ("tags".to_owned(), AttributeValue::Ss(vec!["a".into()])),
            ("ok".to_owned(), AttributeValue::Bool(true)),
            (
                "nested".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "list".to_owned(),
                    AttributeValue::L(vec![AttributeValue::Null(true)]),
                )])),
            ),
        ]);
        Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .dynamodb(
                aws_sdk_dynamodbstreams::types::StreamRecord::builder()
                    .approximate_creation_date_time(aws_smithy_types::DateTime::from_secs(
                        1_700_000_000,
                    ))
                    .keys("id", AttributeValue::S("evt-1".into()))
                    .set_new_image(Some(image))
                    .sequence_number(seq)
                    .size_bytes(42)
                    .stream_view_type(StreamViewType::NewImage)
                    .build(),
            )
            .build()
    }

    #[test]
    fn the_event_is_what_aws_lambda_events_reads() {
        let records = [sdk_record("100"), sdk_record("101")]
            .iter()
            .map(|r| StreamRecord::from_sdk(r, "us-east-1", ARN))
            .collect::<Vec<_>>();
        let json = event(&records);
        assert_eq!(
            json["Records"][0]["dynamodb"]["NewImage"]["raw"]["B"],
            "aGk="
        );
        let parsed: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json).unwrap();
        let first = &parsed.records[0];
        assert_eq!(first.event_name, "INSERT");
        assert_eq!(first.event_source_arn.as_deref(), Some(ARN));
        assert_eq!(first.change.sequence_number.as_deref(), Some("100"));
        assert_eq!(first.change.size_bytes, 42);
        assert_eq!(
            first.change.approximate_creation_date_time.timestamp(),
            1_700_000_000
        );
        let image = serde_json::to_value(&first.change.new_image).unwrap();
        assert_eq!(image["id"], json!({"S": "evt-1"}));
        assert_eq!(image["expires_at"], json!({"N": "1700000000"}));
        assert_eq!(records[1].sequence, "101");
    }

    #[test]
    fn the_failure_record_names_the_shard_and_positions() {
        let records: Vec<_> = [sdk_record("100"), sdk_record("102")]
            .iter()
            .map(|r| StreamRecord::from_sdk(r, "us-east-1", ARN))
            .collect();
        let d = Discarded {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:Relay",
            stream_arn: ARN,
            shard_id: "shardId-1",
            records: &records,
            condition: Condition::RetryAttemptsExhausted,
            invocations: 3,
            function_error: true,
        };
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap();
        let r = invocation_record(&d, now);
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        assert_eq!(r["timestamp"], "2023-11-14T22:15:00.000Z");
        let info = &r["DDBStreamBatchInfo"];
        assert_eq!(info["shardId"], "shardId-1");
        assert_eq!(info["startSequenceNumber"], "100");
        assert_eq!(info["endSequenceNumber"], "102");
        assert_eq!(info["batchSize"], 2);
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(info["streamArn"], ARN);
    }
}
