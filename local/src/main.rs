//! aloft-local: the whole platform on one machine, from template.yaml.
//!
//! Creates the template's tables, queues and secrets in the AWS endpoint given
//! (moto's server), starts every function as its own built binary behind a local Lambda
//! Runtime API, serves the HTTP API as API Gateway would (authorizer and its cache
//! included), runs the event-source mappings (DynamoDB streams, SQS queues), forwards EMF
//! metrics to CloudWatch and fires the template's schedules.
//!
//!   aloft-local --template template.yaml --bin-dir target/debug --port 3000 \
//!     --endpoint http://127.0.0.1:5000 [--parameter-overrides K=V ...] \
//!     [--concurrency 10] [--schedules auto|manual]

mod control;
mod event_sources;
mod gateway;
mod logs;
mod provision;
mod runtime;
mod schedules;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use axum::routing::get;
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::event_sources::EventSources;
use crate::gateway::{Authorizer, Gateway, Route, Throttles, TokenBucket};
use crate::logs::LogSink;
use crate::provision::Resolver;
use crate::provision::{ACCOUNT, Clients};
use crate::runtime::{Function, FunctionConfig};
use crate::schedules::{ScheduleTarget, Schedules};
use crate::template::Template;

/// Variables the sandbox gets from the Lambda service rather than the template: the
/// region, credentials and (locally) the endpoint.
const PASSED_THROUGH: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Runs the whole platform on one machine, from template.yaml.
#[derive(Debug, Parser)]
#[command(name = "aloft-local", version, about)]
struct Args {
    /// The SAM template to run (the single source of truth).
    #[arg(long)]
    template: PathBuf,
    /// Where the functions' built binaries are (`target/debug`).
    #[arg(long)]
    bin_dir: PathBuf,
    /// The port of the HTTP API and the `/_local/*` control routes.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The AWS endpoint (moto's server).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    /// Template parameters, as `K=V` pairs (several after one flag, or the flag repeated).
    #[arg(long = "parameter-overrides", num_args = 1.., value_parser = parse_override)]
    overrides: Vec<(String, String)>,
    /// Processes per function at most, unless it sets ReservedConcurrentExecutions.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    concurrency: usize,
    /// `auto` fires `rate(…)` schedules on time; `manual` only on POST
    /// /_local/schedules/…/fire. Event-source mappings run either way.
    #[arg(long, value_enum, default_value_t = ScheduleMode::Auto)]
    schedules: ScheduleMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleMode {
    Auto,
    Manual,
}

fn parse_override(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected K=V, not {pair}"))
}

fn at_least_one(n: &str) -> Result<usize, String> {
    match n.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

/// The HttpApi's throttles as token buckets, parameters resolved.
fn throttles(template: &Template, resolver: &Resolver) -> Result<Throttles> {
    let specs = template.throttles()?;
    let bucket = |what: &str, spec: &template::ThrottleSpec| -> Result<TokenBucket> {
        let burst: u32 = resolver
            .string(&spec.burst)?
            .parse()
            .with_context(|| format!("{what}: ThrottlingBurstLimit must be a whole number"))?;
        let rate: f64 = resolver
            .string(&spec.rate)?
            .parse()
            .with_context(|| format!("{what}: ThrottlingRateLimit must be a number"))?;
        Ok(TokenBucket::new(burst, rate))
    };
    let default = specs
        .default
        .as_ref()
        .map(|s| bucket("DefaultRouteSettings", s))
        .transpose()?;
    let mut routes = HashMap::new();
    for (key, spec) in &specs.routes {
        routes.insert(key.clone(), bucket(&format!("RouteSettings {key}"), spec)?);
    }
    Ok(Throttles::new(default, routes))
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("aloft-local: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.template)
        .with_context(|| format!("reading {}", args.template.display()))?;
    let overrides: HashMap<_, _> = args.overrides.iter().cloned().collect();
    let template = Template::parse(&text, &overrides)?;

    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(aloft_shared::trust_roots::https_client())
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
        let reserved = match &spec.reserved_concurrency {
            None => None,
            Some(v) => Some(resolver.string(v)?.parse::<usize>().with_context(|| {
                format!("function {}: ReservedConcurrentExecutions", spec.name)
            })?),
        };
        let config = FunctionConfig {
            arn: format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{}", spec.name),
            name: spec.name.clone(),
            binary,
            environment,
            timeout: spec.timeout,
            memory_mb: spec.memory_mb,
            max_instances: reserved.unwrap_or(args.concurrency).max(1),
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
    let mut targets = Vec::new();
    for s in &specs {
        targets.push(ScheduleTarget {
            name: s.name.clone(),
            event: s.event.clone(),
            expression: s.expression.clone(),
            function: function(&s.function)?,
        });
    }
    let schedules = Schedules::new(targets, region.clone());
    if args.schedules == ScheduleMode::Auto {
        for (i, s) in specs.iter().enumerate() {
            match s.every {
                Some(every) => schedules.run(i, every),
                None => println!(
                    "[aloft-local] schedule {} ({}) fires only on POST /_local/schedules/{}/fire",
                    s.name, s.expression, s.name
                ),
            }
        }
    }
    // Event-source mappings always run: they are how records reach their functions.
    let sources = EventSources::start(
        &template.event_sources()?,
        &resolver,
        &functions,
        &event_sources::Clients {
            streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
            sqs: clients.sqs.clone(),
        },
    )
    .await?;
    let gateway = Gateway::new(
        routes,
        authorizer,
        throttles(&template, &resolver)?,
        region.clone(),
    )?;
    let ready = json!({
        "routes": gateway.route_keys(),
        "schedules": schedules.names(),
        "event_sources": sources.names(),
    });
    let control = axum::Router::new()
        .route(
            "/_local/ready",
            get(move || async move { axum::Json(ready) }),
        )
        .merge(schedules.router())
        .merge(Arc::clone(&sources).router())
        .merge(control::functions_router(Arc::clone(&functions)))
        .layer(axum::middleware::from_fn(control::loopback_only));
    let app = control.merge(gateway.router());

    let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("port {} is taken; set ALOFT_PORT to another", args.port))?;
    println!(
        "[aloft-local] serving {} routes, {} schedules and {} event sources on http://127.0.0.1:{}",
        template.routes()?.len(),
        specs.len(),
        sources.names().len(),
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
        served = axum::serve(api_listener, app) => served?,
        () = shutdown => {}
    }
    for f in functions.values() {
        f.shutdown();
    }
    // Let the supervisors reap the children before the runtime goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
