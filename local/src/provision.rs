//! Creates the template's tables, queues and secrets in the local AWS endpoint, and
//! resolves `!Ref`, `!GetAtt` and `!Sub` against what it created, the way
//! CloudFormation would (physical names are the logical ids unless the template names
//! them).

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use rand::Rng;
use serde_norway::Value;

use crate::template::{Template, scalar};

/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// What `!Ref` and `!GetAtt` resolve to for each created resource.
#[derive(Debug, Default)]
pub struct Resolver {
    pub region: String,
    parameters: HashMap<String, String>,
    refs: HashMap<String, String>,
    arns: HashMap<String, String>,
    /// `!GetAtt Table.StreamArn`: the table's latest stream, for tables with one.
    stream_arns: HashMap<String, String>,
}

impl Resolver {
    pub fn reference(&self, name: &str) -> Result<String> {
        match name {
            "AWS::Region" => Ok(self.region.clone()),
            "AWS::AccountId" => Ok(ACCOUNT.into()),
            "AWS::URLSuffix" => Ok("amazonaws.com".into()),
            "AWS::StackName" => Ok("aloft-local".into()),
            _ => self
                .parameters
                .get(name)
                .or_else(|| self.refs.get(name))
                .cloned()
                .ok_or_else(|| anyhow!("!Ref {name}: no such parameter or resource")),
        }
    }

    pub fn attribute(&self, path: &str) -> Result<String> {
        let (id, attr) = path
            .split_once('.')
            .ok_or_else(|| anyhow!("!GetAtt {path}: expected <Resource>.<Attribute>"))?;
        match attr {
            "Arn" => self
                .arns
                .get(id)
                .cloned()
                .ok_or_else(|| anyhow!("!GetAtt {path}: no such resource")),
            "StreamArn" => {
                self.stream_arns.get(id).cloned().ok_or_else(|| {
                    anyhow!("!GetAtt {path}: no table {id} with a StreamSpecification")
                })
            }
            _ => bail!("!GetAtt {path}: only .Arn and .StreamArn are emulated"),
        }
    }

    /// A template value with its intrinsics resolved, as a string.
    pub fn string(&self, v: &Value) -> Result<String> {
        match v {
            Value::Tagged(t) if t.tag == "Ref" => self.reference(&scalar(&t.value)?),
            Value::Tagged(t) if t.tag == "GetAtt" => self.attribute(&scalar(&t.value)?),
            Value::Tagged(t) if t.tag == "Sub" => self.substitute(&scalar(&t.value)?),
            Value::Tagged(t) => bail!("intrinsic !{} is not emulated locally", t.tag),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, inner) = m.iter().next().expect("one entry");
                match k.as_str() {
                    Some("Ref") => self.reference(&scalar(inner)?),
                    Some("Fn::GetAtt") => match inner {
                        Value::Sequence(parts) if parts.len() == 2 => self.attribute(&format!(
                            "{}.{}",
                            scalar(&parts[0])?,
                            scalar(&parts[1])?
                        )),
                        other => self.attribute(&scalar(other)?),
                    },
                    Some("Fn::Sub") => self.substitute(&scalar(inner)?),
                    _ => bail!("expected a scalar or an intrinsic, found a mapping"),
                }
            }
            other => scalar(other),
        }
    }

    fn substitute(&self, text: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| anyhow!("!Sub {text}: unclosed ${{"))?;
            let name = &rest[start + 2..start + end];
            out.push_str(&if name.contains('.') && !name.starts_with("AWS::") {
                self.attribute(name)?
            } else {
                self.reference(name)?
            });
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn function_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{ACCOUNT}:function:{name}", self.region)
    }
}

pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Creates everything the template declares that moto can hold, and returns the resolver
/// for the rest of the template.
pub async fn provision(template: &Template, clients: &Clients, region: &str) -> Result<Resolver> {
    let mut r = Resolver {
        region: region.to_owned(),
        parameters: template.parameters.clone(),
        ..Resolver::default()
    };
    for f in template.of_kind("AWS::Serverless::Function") {
        r.refs.insert(f.logical_id.clone(), f.logical_id.clone());
        let arn = r.function_arn(&f.logical_id);
        r.arns.insert(f.logical_id.clone(), arn);
    }
    for api in template.of_kind("AWS::Serverless::HttpApi") {
        r.refs.insert(api.logical_id.clone(), "local".into());
    }
    for t in template.of_kind("AWS::DynamoDB::Table") {
        let name = physical_name(&t.properties, "TableName", &t.logical_id)?;
        let stream = create_table(&clients.dynamodb, &name, &t.properties)
            .await
            .with_context(|| format!("creating table {}", t.logical_id))?;
        if let Some(arn) = stream {
            r.stream_arns.insert(t.logical_id.clone(), arn);
        }
        r.arns.insert(
            t.logical_id.clone(),
            format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"),
        );
        r.refs.insert(t.logical_id, name);
    }
    // Queues without a redrive policy first, so dead-letter targets exist when needed.
    let mut queues: Vec<_> = template.of_kind("AWS::SQS::Queue").collect();
    queues.sort_by_key(|q| q.properties.get("RedrivePolicy").is_some());
    for q in queues {
        let name = physical_name(&q.properties, "QueueName", &q.logical_id)?;
        let mut create = clients.sqs.create_queue().queue_name(&name);
        for (attr, key) in [
            (QueueAttributeName::VisibilityTimeout, "VisibilityTimeout"),
            (
                QueueAttributeName::MessageRetentionPeriod,
                "MessageRetentionPeriod",
            ),
            (QueueAttributeName::DelaySeconds, "DelaySeconds"),
        ] {
            if let Some(v) = q.properties.get(key) {
                create = create.attributes(attr, r.string(v)?);
            }
        }
        if let Some(policy) = q.properties.get("RedrivePolicy") {
            let target = r.string(&policy["deadLetterTargetArn"])?;
            let max = r.string(&policy["maxReceiveCount"])?;
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max})
                    .to_string(),
            );
        }
        let url = create
            .send()
            .await
            .with_context(|| format!("creating queue {}", q.logical_id))?
            .queue_url
            .unwrap_or_default();
        r.arns.insert(
            q.logical_id.clone(),
            format!("arn:aws:sqs:{region}:{ACCOUNT}:{name}"),
        );
        r.refs.insert(q.logical_id, url);
    }
    for s in template.of_kind("AWS::SecretsManager::Secret") {
        let name = physical_name(&s.properties, "Name", &s.logical_id)?;
        let value = match s.properties.get("SecretString") {
            Some(v) => r.string(v)?,
            None => random_secret(&s.properties["GenerateSecretString"]),
        };
        let arn = match clients
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(out) => out.arn.unwrap_or_default(),
            Err(e) => {
                // A second run against the same endpoint keeps the first run's secret,
                // so cursors and derived keys stay valid.
                let existing = clients
                    .secrets
                    .describe_secret()
                    .secret_id(&name)
                    .send()
                    .await;
                match existing {
                    Ok(d) => d.arn.unwrap_or_default(),
                    Err(_) => return Err(anyhow!("creating secret {}: {e:?}", s.logical_id)),
                }
            }
        };
        r.arns.insert(s.logical_id.clone(), arn.clone());
        r.refs.insert(s.logical_id, arn);
    }
    Ok(r)
}

fn physical_name(props: &Value, key: &str, logical_id: &str) -> Result<String> {
    match props.get(key) {
        Some(v) => scalar(v),
        None => Ok(logical_id.to_owned()),
    }
}

fn random_secret(spec: &Value) -> String {
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let len = spec
        .get("PasswordLength")
        .and_then(Value::as_u64)
        .unwrap_or(32) as usize;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char)
        .collect()
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>> {
    v.as_sequence()
        .context("KeySchema must be a list")?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(scalar(&k["AttributeName"])?)
                .key_type(KeyType::from(scalar(&k["KeyType"])?.as_str()))
                .build()?)
        })
        .collect()
}

fn projection(v: &Value) -> Result<Projection> {
    let kind = v
        .get("ProjectionType")
        .map(scalar)
        .transpose()?
        .unwrap_or("ALL".into());
    let mut p = Projection::builder().projection_type(ProjectionType::from(kind.as_str()));
    if let Some(attrs) = v.get("NonKeyAttributes").and_then(Value::as_sequence) {
        for a in attrs {
            p = p.non_key_attributes(scalar(a)?);
        }
    }
    Ok(p.build())
}

/// The table's `StreamSpecification`, if it has one (`StreamEnabled` is implied, as in
/// CloudFormation).
fn stream_specification(props: &Value) -> Result<Option<StreamSpecification>> {
    let Some(spec) = props.get("StreamSpecification") else {
        return Ok(None);
    };
    let view = scalar(
        spec.get("StreamViewType")
            .context("StreamSpecification needs StreamViewType")?,
    )?;
    Ok(Some(
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(view.as_str()))
            .build()?,
    ))
}

/// Creates the table (or keeps the one a previous run created) and returns its latest
/// stream ARN when the template gives it a stream.
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    props: &Value,
) -> Result<Option<String>> {
    let stream = stream_specification(props)?;
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&props["KeySchema"])?))
        .set_stream_specification(stream.clone());
    for a in props["AttributeDefinitions"]
        .as_sequence()
        .context("AttributeDefinitions must be a list")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(scalar(&a["AttributeName"])?)
                .attribute_type(ScalarAttributeType::from(
                    scalar(&a["AttributeType"])?.as_str(),
                ))
                .build()?,
        );
    }
    if let Some(indexes) = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
    {
        for i in indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(scalar(&i["IndexName"])?)
                    .set_key_schema(Some(key_schema(&i["KeySchema"])?))
                    .projection(projection(&i["Projection"])?)
                    .build()?,
            );
        }
    }
    if let Err(e) = req.send().await {
        let exists = e
            .as_service_error()
            .is_some_and(|e| e.is_resource_in_use_exception());
        if !exists {
            return Err(anyhow!(
                "{}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ));
        }
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        if ttl.get("Enabled").and_then(Value::as_bool) == Some(true) {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(scalar(&ttl["AttributeName"])?)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await
                .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        }
    }
    if stream.is_none() {
        return Ok(None);
    }
    let table = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?
        .table;
    let arn = table.and_then(|t| t.latest_stream_arn).with_context(|| {
        format!(
            "table {name} exists without the stream the template gives it; restart the AWS endpoint"
        )
    })?;
    Ok(Some(arn))
}
