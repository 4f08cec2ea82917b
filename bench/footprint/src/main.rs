//! The Lambda footprint of aloft's functions beside a bare `lambda_runtime` echo: cold
//! init, first-invocation latency, CPU per warm invocation, warm latency, peak RSS, AWS
//! requests per operation and (when `cargo lambda` built them) arm64 package sizes.
//!
//! Runs release binaries under a Runtime API of its own (`sandbox`), against a moto
//! provisioned from template.yaml, with a counting proxy in front of it (`proxy`). Prints
//! a Markdown table and writes it, with the raw figures as JSON, under `--out`.
//! It measures; it never fails on a number.

mod proxy;
mod report;
mod sandbox;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::report::{FunctionFigures, OpFigures, Summary};
use crate::sandbox::Sandbox;

struct Args {
    bin_dir: PathBuf,
    lambda_dir: PathBuf,
    events: PathBuf,
    template: String,
    out: PathBuf,
    cold: usize,
    warm: usize,
    only: Option<Vec<String>>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        bin_dir: "target/release".into(),
        lambda_dir: "target/lambda".into(),
        events: "events".into(),
        template: "template.yaml".into(),
        out: "target/bench".into(),
        cold: 20,
        warm: 1000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => a.bin_dir = value()?.into(),
            "--lambda-dir" => a.lambda_dir = value()?.into(),
            "--events" => a.events = value()?.into(),
            "--template" => a.template = value()?,
            "--out" => a.out = value()?.into(),
            "--cold" => a.cold = value()?.parse()?,
            "--warm" => a.warm = value()?.parse()?,
            "--only" => a.only = Some(value()?.split(',').map(str::to_owned).collect()),
            other => bail!(
                "unknown argument {other}; usage: aloft-footprint [--bin-dir D] [--lambda-dir D] \
                 [--cold N] [--warm N] [--only bin,bin] [--out D]"
            ),
        }
    }
    Ok(a)
}

/// What one invocation carries; `i` makes each one unique where the operation needs it.
type Payload = Box<dyn Fn(&Ctx, usize) -> Value + Send + Sync>;

struct Op {
    name: &'static str,
    payload: Payload,
    /// Fewest AWS requests the operation can be done in, where that is known.
    minimum: Option<u64>,
}

struct Scenario {
    binary: &'static str,
    /// Whose environment from template.yaml it runs with (by binary name).
    env_of: &'static str,
    /// Invocations run once, untimed, before the cold starts (state the operations need).
    setup: Vec<Payload>,
    ops: Vec<Op>,
}

/// State the operations share: a run id to keep data unique, a user for payments.
#[derive(Default)]
struct Ctx {
    run: String,
    /// The binary being measured, so two binaries doing one operation never collide.
    scenario: String,
    user_id: String,
    events: PathBuf,
}

impl Ctx {
    fn http(&self, name: &str) -> Value {
        let path = self.events.join("http").join(format!("{name}.json"));
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| panic!("sample event {} is missing or not JSON", path.display()))
    }

    fn schedule(&self, name: &str) -> Value {
        let path = self.events.join("schedule").join(format!("{name}.json"));
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| panic!("sample event {} is missing or not JSON", path.display()))
    }

    fn service(&self) -> String {
        format!("fp{}", self.run)
    }
}

fn with_body(mut event: Value, body: Value) -> Value {
    let body = body.to_string();
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["body"] = json!(body);
    event
}

fn on_service(mut event: Value, service: &str) -> Value {
    let swap = |p: &str| p.replacen("/services/checkout", &format!("/services/{service}"), 1);
    if let Some(p) = event["rawPath"].as_str() {
        event["rawPath"] = json!(swap(p));
    }
    if let Some(p) = event["requestContext"]["http"]["path"].as_str() {
        event["requestContext"]["http"]["path"] = json!(swap(p));
    }
    event["pathParameters"]["service"] = json!(service);
    event
}

fn create_user(c: &Ctx, i: usize) -> Value {
    with_body(
        c.http("users-create"),
        json!({"email": format!("fp-{}-{}-{i}@example.com", c.run, c.scenario), "name": "Footprint", "role": "viewer"}),
    )
}

fn register(c: &Ctx, _: usize) -> Value {
    let event = on_service(c.http("registry-register"), &c.service());
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    body["ttl_seconds"] = json!(300);
    body["depends_on"] = json!([]);
    with_body(event, body)
}

fn scenarios() -> Vec<Scenario> {
    let schedule = |name: &'static str| -> Payload { Box::new(move |c: &Ctx, _| c.schedule(name)) };
    vec![
        Scenario {
            binary: "bare-echo",
            env_of: "users-api",
            setup: vec![],
            ops: vec![Op {
                name: "echo (create-user event)",
                payload: Box::new(create_user),
                minimum: Some(0),
            }],
        },
        Scenario {
            binary: "users-api",
            env_of: "users-api",
            setup: vec![],
            ops: vec![Op {
                name: "create user",
                payload: Box::new(create_user),
                minimum: Some(1),
            }],
        },
        Scenario {
            binary: "payments-api",
            env_of: "payments-api",
            setup: vec![],
            ops: vec![Op {
                name: "create payment",
                payload: Box::new(|c: &Ctx, i| {
                    let mut e = c.http("payments-create");
                    let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap_or("{}"))
                        .unwrap_or_default();
                    body["user_id"] = json!(c.user_id);
                    e["headers"]["idempotency-key"] =
                        json!(format!("fp-{}-{}-{i}", c.run, c.scenario));
                    with_body(e, body)
                }),
                minimum: None,
            }],
        },
        Scenario {
            binary: "registry-api",
            env_of: "registry-api",
            setup: vec![Box::new(register)],
            ops: vec![
                Op {
                    name: "heartbeat",
                    payload: Box::new(|c: &Ctx, _| {
                        on_service(c.http("registry-heartbeat"), &c.service())
                    }),
                    minimum: Some(1),
                },
                Op {
                    name: "discover",
                    payload: Box::new(|c: &Ctx, _| {
                        let mut e = on_service(c.http("registry-discover"), &c.service());
                        if let Some(h) = e["headers"].as_object_mut() {
                            h.remove("if-none-match");
                        }
                        e
                    }),
                    minimum: Some(1),
                },
            ],
        },
        Scenario {
            binary: "webhooks-api",
            env_of: "webhooks-api",
            setup: vec![],
            ops: vec![Op {
                name: "list webhooks",
                payload: Box::new(|c: &Ctx, _| c.http("webhooks-list")),
                minimum: Some(1),
            }],
        },
        Scenario {
            binary: "registry-sweep",
            env_of: "registry-sweep",
            setup: vec![],
            ops: vec![Op {
                name: "sweep",
                payload: schedule("registry-sweep"),
                minimum: None,
            }],
        },
        Scenario {
            binary: "outbox-relay",
            env_of: "outbox-relay",
            setup: vec![],
            ops: vec![Op {
                name: "relay 1 event",
                payload: Box::new(|c: &Ctx, i| {
                    let id = format!("fp-{}-{i}", c.run);
                    let envelope = json!({"id": id, "type": "user.created", "occurred_at": "2026-01-01T00:00:00Z", "source": "footprint", "data": {}});
                    json!({"Records": [{
                        "awsRegion": "us-east-1", "eventID": id, "eventName": "INSERT",
                        "eventSource": "aws:dynamodb",
                        "dynamodb": {
                            "ApproximateCreationDateTime": 1_700_000_000,
                            "Keys": {"id": {"S": id}},
                            "NewImage": {
                                "id": {"S": id}, "type": {"S": "user.created"},
                                "occurred_at": {"S": "2026-01-01T00:00:00Z"},
                                "envelope": {"S": envelope.to_string()},
                                "expires_at": {"N": "1900000000"}
                            },
                            "SequenceNumber": format!("{}", 100 + i), "SizeBytes": 10,
                            "StreamViewType": "NEW_IMAGE"
                        }
                    }]})
                }),
                minimum: Some(1),
            }],
        },
        Scenario {
            binary: "scaler-tick",
            env_of: "scaler-tick",
            setup: vec![],
            ops: vec![Op {
                name: "tick",
                payload: schedule("scaler-tick"),
                minimum: None,
            }],
        },
        Scenario {
            binary: "quality-tick",
            env_of: "quality-tick",
            setup: vec![],
            ops: vec![Op {
                name: "tick",
                payload: schedule("quality-tick"),
                minimum: None,
            }],
        },
    ]
}

/// Status of a function's reply: the HTTP status of an API Gateway response, else 200,
/// or "error" when the function reported an invocation error.
fn status_of(out: &sandbox::Outcome) -> String {
    if out.error {
        return "error".into();
    }
    serde_json::from_slice::<Value>(&out.body)
        .ok()
        .and_then(|v| v.get("statusCode").and_then(Value::as_u64))
        .map(|s| s.to_string())
        .unwrap_or_else(|| "200".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sizes(lambda_dir: &Path, binary: &str) -> (Option<u64>, Option<u64>) {
    let dir = lambda_dir.join(binary);
    let len = |p: PathBuf| std::fs::metadata(p).ok().map(|m| m.len());
    (len(dir.join("bootstrap")), len(dir.join("bootstrap.zip")))
}

async fn measure(
    a: &Args,
    s: &Scenario,
    env: &BTreeMap<String, String>,
    ctx: &mut Ctx,
    counter: &proxy::Counter,
) -> Result<FunctionFigures> {
    let binary = a.bin_dir.join(s.binary);
    if !binary.is_file() {
        bail!("{} is not built", binary.display());
    }
    let log = a.out.join("logs").join(format!("{}.log", s.binary));
    let _ = std::fs::remove_file(&log);
    let first = &s.ops[0];

    if !s.setup.is_empty() {
        let mut sb = Sandbox::start(&binary, env, &log).await?;
        sb.initialised().await?;
        for p in &s.setup {
            let (out, _) = sb.invoke(Bytes::from(p(ctx, 0).to_string())).await?;
            let status = status_of(&out);
            if !status.starts_with('2') {
                bail!(
                    "setup invocation answered {status}: {}",
                    String::from_utf8_lossy(&out.body)
                );
            }
        }
        sb.stop().await;
    }

    let mut inits = Vec::new();
    let mut firsts = Vec::new();
    let mut init_requests = proxy::Counts::new();
    let mut warm_sandbox = None;
    for i in 0..a.cold {
        let before = counter.snapshot();
        let mut sb = Sandbox::start(&binary, env, &log).await?;
        let at = sb.initialised().await?;
        inits.push(ms(at - sb.started));
        for (k, v) in proxy::diff(&counter.snapshot(), &before) {
            *init_requests.entry(k).or_default() += v;
        }
        let (out, took) = sb
            .invoke(Bytes::from((first.payload)(ctx, 1_000_000 + i).to_string()))
            .await?;
        firsts.push(ms(took));
        if s.binary == "users-api" && ctx.user_id.is_empty() {
            ctx.user_id = serde_json::from_slice::<Value>(&out.body)
                .ok()
                .and_then(|v| {
                    v["body"]
                        .as_str()
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                })
                .and_then(|b| b["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
        }
        if i + 1 == a.cold {
            warm_sandbox = Some(sb);
        } else {
            sb.stop().await;
        }
    }
    let mut sb = warm_sandbox.context("no cold starts were asked for (--cold 0)")?;
    let cold_n = a.cold.max(1) as u64;
    let init_requests = init_requests
        .into_iter()
        .map(|(k, v)| (k, v as f64 / cold_n as f64))
        .collect();

    let mut ops = Vec::new();
    for op in &s.ops {
        // Warm up: connections open, lazily built state built.
        for i in 0..20 {
            sb.invoke(Bytes::from((op.payload)(ctx, 2_000_000 + i).to_string()))
                .await?;
        }
        // The echo costs a few microseconds: more calls, so /proc's 10 ms ticks resolve it.
        let warm = if s.binary == "bare-echo" {
            a.warm * 10
        } else {
            a.warm
        };
        let payloads: Vec<Bytes> = (0..warm)
            .map(|i| Bytes::from((op.payload)(ctx, i).to_string()))
            .collect();
        let before = counter.snapshot();
        let cpu_before = sandbox::cpu_time(sb.pid)?;
        let mut latencies = Vec::with_capacity(warm);
        let mut statuses = BTreeMap::<String, u64>::new();
        for p in payloads {
            let (out, took) = sb.invoke(p).await?;
            latencies.push(ms(took));
            *statuses.entry(status_of(&out)).or_default() += 1;
        }
        let cpu = sandbox::cpu_time(sb.pid)? - cpu_before;
        let requests = proxy::diff(&counter.snapshot(), &before);
        latencies.sort_by(f64::total_cmp);
        let n = warm as f64;
        let requests_per_op: BTreeMap<String, f64> = requests
            .into_iter()
            .map(|(k, v)| (k, v as f64 / n))
            .collect();
        ops.push(OpFigures {
            name: op.name.to_owned(),
            invocations: warm,
            cpu_ms: ms(cpu) / n,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            requests_total: requests_per_op.values().sum(),
            requests: requests_per_op,
            minimum_requests: op.minimum,
            statuses,
        });
    }
    let peak_rss_kib = sandbox::peak_rss_kib(sb.pid)?;
    sb.stop().await;

    let mut sorted_inits = inits.clone();
    sorted_inits.sort_by(f64::total_cmp);
    let mut sorted_firsts = firsts.clone();
    sorted_firsts.sort_by(f64::total_cmp);
    let (raw, zipped) = sizes(&a.lambda_dir, s.binary);
    Ok(FunctionFigures {
        binary: s.binary.to_owned(),
        native_bytes: std::fs::metadata(&binary).ok().map(|m| m.len()),
        arm64_bytes: raw,
        arm64_zip_bytes: zipped,
        cold_starts: a.cold,
        init_median_ms: percentile(&sorted_inits, 50.0),
        init_max_ms: sorted_inits.last().copied().unwrap_or(f64::NAN),
        first_invocation_median_ms: percentile(&sorted_firsts, 50.0),
        first_invocation_max_ms: sorted_firsts.last().copied().unwrap_or(f64::NAN),
        init_requests,
        peak_rss_kib,
        ops,
    })
}

fn write(summary: Summary, out: &Path) -> Result<Summary> {
    std::fs::write(out.join("footprint.md"), summary.markdown())?;
    std::fs::write(
        out.join("footprint.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .context("AWS_ENDPOINT_URL must name a moto provisioned from template.yaml")?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    std::fs::create_dir_all(a.out.join("logs"))?;

    let counter = proxy::Counter::default();
    let proxy = proxy::start(endpoint.clone(), counter.clone()).await?;
    let overrides = BTreeMap::from([
        ("WebhookAllowPrivateUrls".to_owned(), "true".to_owned()),
        ("LogLevel".to_owned(), "info".to_owned()),
    ]);
    // Functions reach AWS through the counting proxy; queue URLs still name moto, as
    // aloft-local's do (SQS routes by the request's endpoint, not the URL's host).
    let tpl = template::Template::load(&a.template, &endpoint, &region, overrides)?;
    let functions = tpl.functions();
    let logical = |binary: &str| {
        functions
            .iter()
            .find(|(_, b)| b == binary)
            .map(|(id, _)| id.clone())
            .with_context(|| format!("template.yaml has no function built from {binary}"))
    };

    let mut ctx = Ctx {
        run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        events: a.events.clone(),
        ..Ctx::default()
    };
    let mut results = Vec::new();
    for s in scenarios() {
        if let Some(only) = &a.only {
            if s.binary != "bare-echo" && !only.iter().any(|o| o == s.binary) {
                continue;
            }
        }
        let mut env = tpl.environment(&logical(s.env_of)?)?;
        env.insert("AWS_ENDPOINT_URL".into(), format!("http://{proxy}"));
        // The local stack's call timeout (run.sh exports it, as stack.sh does): moto can
        // queue a transaction for seconds as its tables fill, and a create that timed out
        // at the deployed 4 s would be a 503 measuring nothing.
        if let Ok(ms) = std::env::var("AWS_CALL_TIMEOUT_MS") {
            env.insert("AWS_CALL_TIMEOUT_MS".into(), ms);
        }
        eprintln!("footprint: {} ...", s.binary);
        ctx.scenario = s.binary.to_owned();
        match measure(&a, &s, &env, &mut ctx, &counter).await {
            Ok(f) => results.push(f),
            Err(e) => eprintln!("footprint: {} not measured: {e:#}", s.binary),
        }
        // After each function, so a run cut short (or moto falling over) keeps what it got.
        results = write(Summary::new(results, &a), &a.out)?.functions;
    }

    let summary = write(Summary::new(results, &a), &a.out)?;
    println!("{}", summary.markdown());
    println!(
        "(written to {} and {})",
        a.out.join("footprint.md").display(),
        a.out.join("footprint.json").display()
    );
    Ok(())
}
