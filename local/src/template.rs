//! Reads template.yaml, the single source of truth: parameters, functions with their
//! environment and triggers, the HTTP API's authorizer, tables, queues and secrets.
//!
//! Only what aloft's template uses is understood; anything else is an error naming the
//! resource, so a template change that `local/` can't honour fails loudly at start-up
//! instead of running something different from what deploys.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::Value;

#[derive(Debug)]
pub struct Template {
    pub parameters: HashMap<String, String>,
    resources: serde_norway::Mapping,
    globals: Value,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub authorized: bool,
    pub function: String,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    /// `<Function>.<Event>`, as in the template.
    pub name: String,
    pub event: String,
    pub function: String,
    pub expression: String,
    /// `None` for cron expressions, which are only fired on demand locally.
    pub every: Option<Duration>,
}

/// A function's `DynamoDB` or `SQS` event: an event-source mapping, properties unresolved
/// (see `event_sources::config` for what they mean).
#[derive(Debug, Clone)]
pub struct EventSourceDef {
    /// `<Function>.<Event>`, as in the template.
    pub name: String,
    pub function: String,
    /// `DynamoDB` or `SQS`.
    pub kind: String,
    pub properties: Value,
}

/// The event types local/ emulates; any other is refused at start-up.
const KNOWN_EVENT_TYPES: &[&str] = &["HttpApi", "Schedule", "DynamoDB", "SQS"];

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: String,
    pub memory_mb: u64,
    pub timeout: Duration,
    /// Unresolved (`!Ref <Parameter>` or a number).
    pub reserved_concurrency: Option<Value>,
    /// Unresolved: the `Environment.Variables` of Globals merged with the function's.
    pub environment: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct AuthorizerSpec {
    pub function: String,
    pub ttl: Value,
}

/// A route's (or the stage's) throttle, unresolved: `ThrottlingBurstLimit` and
/// `ThrottlingRateLimit`.
#[derive(Debug, Clone)]
pub struct ThrottleSpec {
    pub burst: Value,
    pub rate: Value,
}

/// The HttpApi's `DefaultRouteSettings` and `RouteSettings` throttles.
#[derive(Debug, Clone, Default)]
pub struct ThrottleSpecs {
    pub default: Option<ThrottleSpec>,
    /// By route key (`GET /health`).
    pub routes: Vec<(String, ThrottleSpec)>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Value,
}

impl Template {
    pub fn parse(text: &str, overrides: &HashMap<String, String>) -> Result<Self> {
        let doc: Value = serde_norway::from_str(text).context("template.yaml is not valid YAML")?;
        let mut parameters = HashMap::new();
        if let Some(params) = doc.get("Parameters").and_then(Value::as_mapping) {
            for (name, spec) in params {
                let name = name.as_str().context("parameter name")?.to_owned();
                let value = match overrides.get(&name) {
                    Some(v) => v.clone(),
                    None => scalar(spec.get("Default").ok_or_else(|| {
                        anyhow!(
                            "parameter {name} has no Default; pass --parameter-overrides {name}=…"
                        )
                    })?)?,
                };
                parameters.insert(name, value);
            }
        }
        for name in overrides.keys() {
            if !parameters.contains_key(name) {
                bail!("--parameter-overrides names {name}, which the template does not declare");
            }
        }
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .context("template has no Resources")?;
        let globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Self {
            parameters,
            resources,
            globals,
        })
    }

    pub fn resources(&self) -> impl Iterator<Item = Resource> + '_ {
        self.resources.iter().filter_map(|(id, r)| {
            Some(Resource {
                logical_id: id.as_str()?.to_owned(),
                kind: r.get("Type")?.as_str()?.to_owned(),
                properties: r.get("Properties").cloned().unwrap_or(Value::Null),
            })
        })
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = Resource> + 'a {
        self.resources().filter(move |r| r.kind == kind)
    }

    fn global(&self, key: &str) -> Option<&Value> {
        self.globals.get(key)
    }

    pub fn functions(&self) -> Result<Vec<FunctionSpec>> {
        let mut out = Vec::new();
        for id in self.resources.keys().filter_map(Value::as_str) {
            let r = &self.resources[id];
            if r.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let props = r.get("Properties").cloned().unwrap_or(Value::Null);
            let binary = r
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .with_context(|| format!("function {id} has no Metadata.BuildProperties.Binary"))?
                .to_owned();
            let number = |key: &str, default: u64| -> Result<u64> {
                match props.get(key).or_else(|| self.global(key)) {
                    None => Ok(default),
                    Some(v) => scalar(v)?
                        .parse()
                        .with_context(|| format!("function {id}: {key} is not a number")),
                }
            };
            let mut environment = BTreeMap::new();
            for source in [self.global("Environment"), props.get("Environment")] {
                if let Some(vars) = source
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_mapping)
                {
                    for (k, v) in vars {
                        environment
                            .insert(k.as_str().context("variable name")?.to_owned(), v.clone());
                    }
                }
            }
            out.push(FunctionSpec {
                name: id.to_owned(),
                binary,
                memory_mb: number("MemorySize", 128)?,
                timeout: Duration::from_secs(number("Timeout", 3)?),
                reserved_concurrency: props.get("ReservedConcurrentExecutions").cloned(),
                environment,
            });
        }
        Ok(out)
    }

    /// Every `HttpApi` event of every function.
    pub fn routes(&self) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for (function, event, props) in self.events("HttpApi") {
            let method = props
                .get("Method")
                .and_then(Value::as_str)
                .with_context(|| format!("{function}.{event}: HttpApi event without Method"))?
                .to_ascii_uppercase();
            let path = props
                .get("Path")
                .and_then(Value::as_str)
                .with_context(|| format!("{function}.{event}: HttpApi event without Path"))?
                .to_owned();
            let authorizer = props
                .get("Auth")
                .and_then(|a| a.get("Authorizer"))
                .and_then(Value::as_str);
            routes.push(Route {
                method: if method == "ANY" {
                    "ANY".into()
                } else {
                    method
                },
                path,
                authorized: authorizer != Some("NONE"),
                function,
            });
        }
        Ok(routes)
    }

    pub fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut out = Vec::new();
        for (function, event, props) in self.events("Schedule") {
            if props.get("Enabled").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let expression = props
                .get("Schedule")
                .and_then(Value::as_str)
                .with_context(|| format!("{function}.{event}: Schedule event without Schedule"))?
                .to_owned();
            out.push(Schedule {
                name: format!("{function}.{event}"),
                every: parse_rate(&expression)?,
                event,
                function,
                expression,
            });
        }
        Ok(out)
    }

    /// Every `DynamoDB` and `SQS` event of every function. Fails on an event type local/
    /// does not emulate, so such a template change is noticed at start-up.
    pub fn event_sources(&self) -> Result<Vec<EventSourceDef>> {
        for (id, r) in &self.resources {
            let events = r
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for (name, e) in events.into_iter().flatten() {
                let kind = e.get("Type").and_then(Value::as_str).unwrap_or_default();
                if !KNOWN_EVENT_TYPES.contains(&kind) {
                    bail!(
                        "{}.{}: event type `{kind}` is not emulated locally (only {})",
                        id.as_str().unwrap_or_default(),
                        name.as_str().unwrap_or_default(),
                        KNOWN_EVENT_TYPES.join(", ")
                    );
                }
            }
        }
        let mut out = Vec::new();
        for kind in ["DynamoDB", "SQS"] {
            for (function, event, properties) in self.events(kind) {
                out.push(EventSourceDef {
                    name: format!("{function}.{event}"),
                    function,
                    kind: kind.to_owned(),
                    properties,
                });
            }
        }
        Ok(out)
    }

    fn events(&self, kind: &str) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (id, r) in &self.resources {
            let Some(id) = id.as_str() else { continue };
            let Some(events) = r
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for (name, e) in events {
                if e.get("Type").and_then(Value::as_str) == Some(kind) {
                    out.push((
                        id.to_owned(),
                        name.as_str().unwrap_or_default().to_owned(),
                        e.get("Properties").cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
        out
    }

    /// The HttpApi's stage and route throttles. A setting other than the two throttling
    /// ones stops start-up, so a template change is noticed rather than ignored.
    pub fn throttles(&self) -> Result<ThrottleSpecs> {
        let Some(api) = self.of_kind("AWS::Serverless::HttpApi").next() else {
            return Ok(ThrottleSpecs::default());
        };
        let parse = |what: &str, v: &Value| -> Result<Option<ThrottleSpec>> {
            let Some(map) = v.as_mapping() else {
                return Ok(None);
            };
            for k in map.keys().filter_map(Value::as_str) {
                if !["ThrottlingBurstLimit", "ThrottlingRateLimit"].contains(&k) {
                    bail!("{what}: `{k}` is not emulated locally (only throttling)");
                }
            }
            match (v.get("ThrottlingBurstLimit"), v.get("ThrottlingRateLimit")) {
                (None, None) => Ok(None),
                (Some(burst), Some(rate)) => Ok(Some(ThrottleSpec {
                    burst: burst.clone(),
                    rate: rate.clone(),
                })),
                _ => bail!("{what}: set both ThrottlingBurstLimit and ThrottlingRateLimit"),
            }
        };
        let props = &api.properties;
        let mut out = ThrottleSpecs {
            default: match props.get("DefaultRouteSettings") {
                Some(v) => parse("DefaultRouteSettings", v)?,
                None => None,
            },
            routes: Vec::new(),
        };
        for (key, v) in props
            .get("RouteSettings")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().context("RouteSettings key")?.to_owned();
            if let Some(spec) = parse(&format!("RouteSettings {key}"), v)? {
                out.routes.push((key, spec));
            }
        }
        Ok(out)
    }

    /// The HttpApi's default Lambda authorizer, if it has one.
    pub fn authorizer(&self) -> Result<Option<AuthorizerSpec>> {
        let Some(api) = self.of_kind("AWS::Serverless::HttpApi").next() else {
            return Ok(None);
        };
        let auth = &api.properties["Auth"];
        let Some(default) = auth.get("DefaultAuthorizer").and_then(Value::as_str) else {
            return Ok(None);
        };
        let spec = &auth["Authorizers"][default];
        let function = match spec.get("FunctionArn") {
            Some(Value::Tagged(t)) if t.tag == "GetAtt" => t
                .value
                .as_str()
                .and_then(|s| s.split_once('.'))
                .map(|(id, _)| id.to_owned()),
            _ => None,
        }
        .with_context(|| {
            format!("authorizer {default}: FunctionArn must be !GetAtt <Function>.Arn")
        })?;
        let payload = spec
            .get("AuthorizerPayloadFormatVersion")
            .map(scalar)
            .transpose()?;
        if payload.as_deref() != Some("2.0")
            || spec.get("EnableSimpleResponses").and_then(Value::as_bool) != Some(true)
        {
            bail!("authorizer {default}: local/ emulates payload 2.0 with simple responses only");
        }
        let identity = &spec["Identity"];
        let headers: Vec<_> = identity
            .get("Headers")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if headers != ["Authorization"] {
            bail!(
                "authorizer {default}: local/ emulates the Authorization header as identity source only"
            );
        }
        Ok(Some(AuthorizerSpec {
            function,
            ttl: identity
                .get("ReauthorizeEvery")
                .cloned()
                .unwrap_or(Value::Number(300.into())),
        }))
    }
}

/// A YAML scalar as a string (numbers and booleans included).
pub fn scalar(v: &Value) -> Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => bail!("expected a scalar, found {other:?}"),
    })
}

/// `rate(5 minutes)` → every 5 minutes; `cron(…)` → `None` (fired on demand only).
pub fn parse_rate(expression: &str) -> Result<Option<Duration>> {
    if expression.starts_with("cron(") {
        return Ok(None);
    }
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
        .with_context(|| format!("schedule `{expression}` is neither rate(…) nor cron(…)"))?;
    let (n, unit) = inner
        .split_once(' ')
        .with_context(|| format!("schedule `{expression}`: expected `rate(<n> <unit>)`"))?;
    let n: u64 = n
        .parse()
        .with_context(|| format!("schedule `{expression}`: bad number"))?;
    let seconds = match unit {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => bail!("schedule `{expression}`: unit must be minute(s), hour(s) or day(s)"),
    };
    Ok(Some(Duration::from_secs(n * seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_cron_is_on_demand() {
        assert_eq!(
            parse_rate("rate(1 minute)").unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_rate("rate(2 hours)").unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(parse_rate("cron(0 12 * * ? *)").unwrap(), None);
        assert!(parse_rate("every minute").is_err());
        assert!(parse_rate("rate(1 fortnight)").is_err());
    }

    #[test]
    fn the_repository_template_is_understood() {
        let text = include_str!("../../template.yaml");
        let t = Template::parse(text, &HashMap::new()).unwrap();
        let functions = t.functions().unwrap();
        let users = functions
            .iter()
            .find(|f| f.name == "UsersFunction")
            .unwrap();
        assert_eq!(users.binary, "users-api");
        assert!(users.environment.contains_key("USERS_TABLE"));
        assert!(
            users.environment.contains_key("RUST_LOG"),
            "globals are merged"
        );
        let routes = t.routes().unwrap();
        let health = routes.iter().find(|r| r.path == "/health").unwrap();
        assert!(!health.authorized);
        assert!(
            routes
                .iter()
                .filter(|r| r.path != "/health")
                .all(|r| r.authorized)
        );
        let auth = t.authorizer().unwrap().unwrap();
        assert_eq!(auth.function, "AuthorizerFunction");
        assert!(!t.schedules().unwrap().is_empty());
        assert_eq!(t.parameters["AuthorizerCacheTtlSeconds"], "300");
        assert!(
            functions
                .iter()
                .filter(|f| f.name != "PaymentsReconcilerFunction")
                .all(
                    |f| matches!(&f.reserved_concurrency, Some(Value::Tagged(t)) if t.tag == "Ref")
                ),
            "every function's reserved concurrency is a template parameter"
        );
        let throttles = t.throttles().unwrap();
        assert!(throttles.default.is_some());
        assert!(throttles.routes.iter().any(|(k, _)| k == "GET /health"));
        let sources = t.event_sources().unwrap();
        let relay = sources
            .iter()
            .find(|s| s.name == "OutboxRelayFunction.OutboxStream")
            .unwrap();
        assert_eq!(relay.kind, "DynamoDB");
        assert_eq!(relay.function, "OutboxRelayFunction");
    }

    #[test]
    fn unknown_event_types_are_refused() {
        let text = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Bus:
          Type: EventBridgeRule
          Properties: {}
"#;
        let t = Template::parse(text, &HashMap::new()).unwrap();
        let e = t.event_sources().unwrap_err().to_string();
        assert!(e.contains("F.Bus") && e.contains("EventBridgeRule"), "{e}");
    }

    #[test]
    fn openapi_documents_exactly_the_templates_routes() {
        let template =
            Template::parse(include_str!("../../template.yaml"), &HashMap::new()).unwrap();
        let spec: Value = serde_norway::from_str(include_str!("../../openapi.yaml")).unwrap();
        let mut documented = Vec::new();
        for (path, item) in spec["paths"].as_mapping().unwrap() {
            for (method, _) in item.as_mapping().unwrap() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                    documented.push(format!("{method} {}", path.as_str().unwrap()));
                }
            }
        }
        let mut routes: Vec<_> = template
            .routes()
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(
            documented, routes,
            "openapi.yaml and template.yaml disagree"
        );
    }

    #[test]
    fn unknown_overrides_are_refused() {
        let text = include_str!("../../template.yaml");
        let overrides = HashMap::from([("Nope".to_owned(), "1".to_owned())]);
        assert!(Template::parse(text, &overrides).is_err());
    }
}
