//! Each function's environment from template.yaml, resolved the way aloft-local resolves it
//! against a moto that aloft-local has provisioned (physical names are the logical ids unless
//! the template names them; `!Ref` of a queue is its URL, of a secret its name).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::Value;

const ACCOUNT: &str = "123456789012";

pub struct Template {
    doc: Value,
    endpoint: String,
    region: String,
    overrides: BTreeMap<String, String>,
}

impl Template {
    pub fn load(
        path: &str,
        endpoint: &str,
        region: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        Ok(Self {
            doc: serde_norway::from_str(&text)?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            overrides,
        })
    }

    /// Every function: (logical id, binary name).
    pub fn functions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(Value::Mapping(resources)) = self.doc.get("Resources") {
            for (id, r) in resources {
                if r.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                    continue;
                }
                let binary = r
                    .get("Metadata")
                    .and_then(|m| m.get("BuildProperties"))
                    .and_then(|b| b.get("Binary"))
                    .and_then(Value::as_str);
                if let (Some(id), Some(binary)) = (id.as_str(), binary) {
                    out.push((id.to_owned(), binary.to_owned()));
                }
            }
        }
        out
    }

    /// The function's resolved environment, Globals first, plus endpoint and region.
    pub fn environment(&self, logical_id: &str) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        let global = self
            .doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"));
        let own = self
            .doc
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"));
        for source in [global, own].into_iter().flatten() {
            if let Some(Value::Mapping(vars)) = source.get("Variables") {
                for (k, v) in vars {
                    let k = k
                        .as_str()
                        .ok_or_else(|| anyhow!("non-string variable name"))?;
                    let v = self
                        .string(v)
                        .with_context(|| format!("{logical_id}: variable {k}"))?;
                    env.insert(k.to_owned(), v);
                }
            }
        }
        env.insert("AWS_ENDPOINT_URL".into(), self.endpoint.clone());
        env.insert("AWS_REGION".into(), self.region.clone());
        env.insert("AWS_DEFAULT_REGION".into(), self.region.clone());
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            env.insert(
                k.into(),
                std::env::var(k).unwrap_or_else(|_| "testing".into()),
            );
        }
        Ok(env)
    }

    fn string(&self, v: &Value) -> Result<String> {
        match v {
            Value::Tagged(t) if t.tag == "Ref" => self.reference(scalar(&t.value)?.as_str()),
            Value::Tagged(t) if t.tag == "GetAtt" => self.attribute(&scalar(&t.value)?),
            Value::Tagged(t) if t.tag == "Sub" => self.substitute(&scalar(&t.value)?),
            Value::Tagged(t) => bail!("intrinsic !{} is not resolved here", t.tag),
            other => scalar(other),
        }
    }

    fn resource(&self, id: &str) -> Option<&Value> {
        self.doc.get("Resources").and_then(|r| r.get(id))
    }

    fn physical(&self, id: &str, key: &str) -> String {
        self.resource(id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or(id)
            .to_owned()
    }

    fn reference(&self, name: &str) -> Result<String> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(ACCOUNT.into()),
            "AWS::StackName" => return Ok("aloft-local".into()),
            _ => {}
        }
        if let Some(v) = self.overrides.get(name) {
            return Ok(v.clone());
        }
        if let Some(p) = self.doc.get("Parameters").and_then(|p| p.get(name)) {
            return p.get("Default").map(scalar).unwrap_or(Ok(String::new()));
        }
        let kind = self
            .resource(name)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("!Ref {name}: no such parameter or resource"))?;
        Ok(match kind {
            "AWS::DynamoDB::Table" => self.physical(name, "TableName"),
            "AWS::SQS::Queue" => format!(
                "{}/{ACCOUNT}/{}",
                self.endpoint,
                self.physical(name, "QueueName")
            ),
            "AWS::SecretsManager::Secret" => self.physical(name, "Name"),
            _ => name.to_owned(),
        })
    }

    fn attribute(&self, path: &str) -> Result<String> {
        let (id, _attr) = path
            .split_once('.')
            .ok_or_else(|| anyhow!("!GetAtt {path}"))?;
        let region = &self.region;
        let kind = self
            .resource(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(match kind {
            "AWS::DynamoDB::Table" => format!(
                "arn:aws:dynamodb:{region}:{ACCOUNT}:table/{}",
                self.physical(id, "TableName")
            ),
            "AWS::SQS::Queue" => format!(
                "arn:aws:sqs:{region}:{ACCOUNT}:{}",
                self.physical(id, "QueueName")
            ),
            _ => format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{id}"),
        })
    }

    fn substitute(&self, text: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| anyhow!("!Sub {text}"))?;
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
}

fn scalar(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => bail!("expected a scalar"),
    }
}
