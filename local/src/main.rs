//! aloft-local: the whole platform on one machine, from template.yaml.
//!
//! Creates the template's tables, queues and secrets in the AWS endpoint given
//! (moto's server), starts every function as its own built binary behind a local Lambda
//! Runtime API, serves the HTTP API as API Gateway would (authorizer and its cache
//! included), forwards EMF metrics to CloudWatch and fires the template's schedules.
//!
//!   aloft-local --template template.yaml --bin-dir target/debug --port 3000 \
//!     --endpoint http://127.0.0.1:5000 [--parameter-overrides K=V ...] \
//!     [--concurrency 10] [--schedules auto|manual]

mod gateway;
mod logs;
mod provision;
mod runtime;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;

use crate::gateway::{Authorizer, Gateway, Route, ScheduleTarget};
use crate::logs::LogSink;
use crate::provision::{ACCOUNT, Clients};
use crate::runtime::{Function, FunctionConfig};
use crate::template::Template;

const USAGE: &str = "usage: aloft-local --template FILE --bin-dir DIR --port PORT --endpoint URL \
[--parameter-overrides K=V ...] [--concurrency N] [--schedules auto|manual]";

/// Variables the sandbox gets from the Lambda service rather than the template: the
/// region, credentials and (locally) the endpoint.
const PASSED_THROUGH: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

struct Args {
    template: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    endpoint: String,
    overrides: HashMap<String, String>,
    concurrency: usize,
    auto_schedules: bool,
}

fn parse_args() -> Result<Args> {
    let mut template = None;
    let mut bin_dir = None;
    let mut port = 3000;
    let mut endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let mut overrides = HashMap::new();
    let mut concurrency = 10;
    let mut auto_schedules = true;
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--template" => template = Some(PathBuf::from(value()?)),
            "--bin-dir" => bin_dir = Some(PathBuf::from(value()?)),
            "--port" => port = value()?.parse().context("--port must be a port number")?,
            "--endpoint" => endpoint = Some(value()?),
            "--concurrency" => {
                concurrency = value()?.parse().context("--concurrency must be a number")?
            }
            "--schedules" => {
                auto_schedules = match value()?.as_str() {
                    "auto" => true,
                    "manual" => false,
                    other => bail!("--schedules must be auto or manual, not {other}"),
                }
            }
            "--parameter-overrides" => {
                let first = value()?;
                let mut pairs = vec![first];
                while let Some(next) = args.next_if(|a| !a.starts_with("--")) {
                    pairs.push(next);
                }
                for pair in pairs {
                    let (k, v) = pair
                        .split_once('=')
                        .with_context(|| format!("--parameter-overrides takes K=V, not {pair}"))?;
                    overrides.insert(k.to_owned(), v.to_owned());
                }
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    Ok(Args {
        template: template.with_context(|| format!("--template is required\n{USAGE}"))?,
        bin_dir: bin_dir.with_context(|| format!("--bin-dir is required\n{USAGE}"))?,
        port,
        endpoint: endpoint
            .with_context(|| format!("--endpoint (or AWS_ENDPOINT_URL) is required\n{USAGE}"))?,
        overrides,
        concurrency,
        auto_schedules,
    })
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("aloft-local: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.template)
        .with_context(|| format!("reading {}", args.template.display()))?;
    let template = Template::parse(&text, &args.overrides)?;

    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&args.endpoint)
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
    };
    let resolver = provision::provision(&template, &clients, &region)
        .await
        .with_context(|| format!("provisioning the template's resources at {}", args.endpoint))?;

    let (logs, _forwarder) = LogSink::new(aws_sdk_cloudwatch::Client::new(&sdk));

    let mut functions = HashMap::new();
    for spec in template.functions()? {
        let binary = args.bin_dir.join(&spec.binary);
        if !binary.is_file() {
            bail!(
                "function {} needs binary {}; build it first (cargo build --bins)",
                spec.name,
                binary.display()
            );
        }
        let mut environment = BTreeMap::new();
        for (k, v) in &spec.environment {
            let value = resolver
                .string(v)
                .with_context(|| format!("function {}: environment variable {k}", spec.name))?;
            environment.insert(k.clone(), value);
        }
        for k in PASSED_THROUGH {
            if let Ok(v) = std::env::var(k) {
                environment.insert((*k).to_owned(), v);
            }
        }
        environment.insert("AWS_REGION".into(), region.clone());
        environment.insert("AWS_DEFAULT_REGION".into(), region.clone());
        environment.insert("AWS_ENDPOINT_URL".into(), args.endpoint.clone());
        let config = FunctionConfig {
            arn: format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{}", spec.name),
            name: spec.name.clone(),
            binary,
            environment,
            timeout: spec.timeout,
            memory_mb: spec.memory_mb,
            max_instances: spec.reserved_concurrency.unwrap_or(args.concurrency).max(1),
        };
        functions.insert(spec.name.clone(), Function::new(config, logs.clone()));
    }
    let functions = Arc::new(functions);
    let function = |name: &str| {
        functions.get(name).cloned().with_context(|| {
            format!("the template refers to function {name}, which it does not declare")
        })
    };

    let authorizer = match template.authorizer()? {
        None => None,
        Some(spec) => {
            let ttl: u64 = resolver
                .string(&spec.ttl)?
                .parse()
                .context("authorizer ReauthorizeEvery must be a number of seconds")?;
            Some(Authorizer {
                function: function(&spec.function)?,
                ttl: Duration::from_secs(ttl),
            })
        }
    };
    let mut routes = Vec::new();
    for r in template.routes()? {
        routes.push(Route::new(
            &r.method,
            &r.path,
            r.authorized,
            function(&r.function)?,
        ));
    }
    let specs = template.schedules()?;
    let mut schedules = Vec::new();
    for s in &specs {
        schedules.push(ScheduleTarget {
            name: s.name.clone(),
            event: s.event.clone(),
            expression: s.expression.clone(),
            function: function(&s.function)?,
        });
    }
    let gateway = Gateway::new(routes, authorizer, schedules, region.clone());
    if args.auto_schedules {
        for (i, s) in specs.iter().enumerate() {
            match s.every {
                Some(every) => gateway.run_schedule(i, every),
                None => println!(
                    "[aloft-local] schedule {} ({}) fires only on POST /_local/schedules/{}/fire",
                    s.name, s.expression, s.name
                ),
            }
        }
    }

    let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("port {} is taken; set ALOFT_PORT to another", args.port))?;
    println!(
        "[aloft-local] serving {} routes and {} schedules on http://127.0.0.1:{}",
        template.routes()?.len(),
        specs.len(),
        args.port
    );
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    // Stop on the first signal without waiting for requests in flight (a hung function
    // must not make Ctrl-C useless); the children are stopped below either way.
    tokio::select! {
        served = axum::serve(api_listener, gateway.router()) => served?,
        () = shutdown => {}
    }
    for f in functions.values() {
        f.shutdown();
    }
    // Let the supervisors reap the children before the runtime goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
