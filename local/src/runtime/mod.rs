//! Lambda, locally: each function is its own built binary, started as child processes
//! that speak the Lambda Runtime API to us, exactly as they do in the Lambda sandbox.
//!
//! An invocation goes to an idle process of its function if there is one; otherwise it
//! waits in line and, while the function has fewer processes than its concurrency
//! limit, a new process is started (a cold start). A process that overruns the
//! function's timeout is killed, like a Lambda sandbox, and its invocation fails.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::logs::LogSink;

mod api;
use api::instance_api;

/// How long a new process may take to ask for its first invocation.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lambda's limit on a synchronous response.
const MAX_RESPONSE: usize = 6 * 1024 * 1024;

/// What came back from an invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(Bytes),
    /// The function reported an error, crashed or timed out. `{errorType, errorMessage}`.
    Error(serde_json::Value),
}

impl Outcome {
    fn error(kind: &str, message: impl Into<String>) -> Self {
        Outcome::Error(serde_json::json!({"errorType": kind, "errorMessage": message.into()}))
    }
}

struct Invocation {
    request_id: String,
    payload: Bytes,
}

struct Inflight {
    instance: Option<u64>,
    reply: oneshot::Sender<Outcome>,
}

struct Instance {
    kill: Option<oneshot::Sender<()>>,
    /// This process's own Runtime API server, stopped when the process exits.
    api: tokio::task::JoinHandle<()>,
    /// Has asked for work at least once, i.e. finished its init.
    initialised: bool,
}

#[derive(Default)]
struct Pool {
    next_instance: u64,
    instances: HashMap<u64, Instance>,
    idle: VecDeque<(u64, oneshot::Sender<Invocation>)>,
    queue: VecDeque<Invocation>,
    inflight: HashMap<String, Inflight>,
}

pub struct FunctionConfig {
    pub name: String,
    pub binary: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub max_instances: usize,
    pub arn: String,
}

pub struct Function {
    config: FunctionConfig,
    logs: LogSink,
    pool: Mutex<Pool>,
}

impl Function {
    pub fn new(config: FunctionConfig, logs: LogSink) -> Arc<Self> {
        Arc::new(Self {
            config,
            logs,
            pool: Mutex::new(Pool::default()),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn arn(&self) -> &str {
        &self.config.arn
    }

    /// How many processes of this function may run at once (its concurrency).
    pub fn max_instances(&self) -> usize {
        self.config.max_instances
    }

    /// A line in the function's log from aloft-local (e.g. an event source's doing).
    pub fn log(&self, message: &str) {
        self.logs.system(&self.config.name, message);
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // A panic while holding the lock leaves the pool consistent enough to go on.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Invokes the function with `payload` and waits for its outcome.
    pub async fn invoke(self: &Arc<Self>, payload: Bytes) -> Outcome {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (reply, outcome) = oneshot::channel();
        {
            let mut pool = self.pool();
            pool.inflight.insert(
                request_id.clone(),
                Inflight {
                    instance: None,
                    reply,
                },
            );
            let mut invocation = Invocation {
                request_id,
                payload,
            };
            loop {
                let Some((instance, waiter)) = pool.idle.pop_front() else {
                    pool.queue.push_back(invocation);
                    if pool.instances.len() < self.config.max_instances {
                        self.spawn_instance(&mut pool);
                    }
                    break;
                };
                let id = invocation.request_id.clone();
                match waiter.send(invocation) {
                    Ok(()) => {
                        self.assign(&mut pool, &id, instance);
                        break;
                    }
                    // That process went away while idle; try the next one.
                    Err(back) => invocation = back,
                }
            }
        }
        outcome
            .await
            .unwrap_or_else(|_| Outcome::error("Runtime.Unknown", "invocation was dropped"))
    }

    /// Records that `instance` took invocation `id`, and arms its timeout.
    fn assign(self: &Arc<Self>, pool: &mut Pool, id: &str, instance: u64) {
        if let Some(i) = pool.inflight.get_mut(id) {
            i.instance = Some(instance);
        }
        let this = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(this.config.timeout).await;
            let mut pool = this.pool();
            let timed_out = pool
                .inflight
                .get(&id)
                .is_some_and(|i| i.instance == Some(instance));
            if timed_out {
                if let Some(i) = pool.inflight.remove(&id) {
                    let secs = this.config.timeout.as_secs_f64();
                    let _ = i.reply.send(Outcome::error(
                        "Sandbox.Timedout",
                        format!("Task timed out after {secs:.2} seconds"),
                    ));
                }
                this.logs.system(
                    &this.config.name,
                    &format!("{id} timed out; stopping its process"),
                );
                if let Some(kill) = pool
                    .instances
                    .get_mut(&instance)
                    .and_then(|i| i.kill.take())
                {
                    let _ = kill.send(());
                }
            }
        });
    }

    fn spawn_instance(self: &Arc<Self>, pool: &mut Pool) {
        let instance = pool.next_instance;
        pool.next_instance += 1;
        let c = &self.config;
        // Each process gets its own Runtime API endpoint (host:port, as in the Lambda
        // sandbox), so we always know which process took which invocation.
        let listener = match std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
        {
            Ok(l) => l,
            Err(e) => {
                fail_queue(
                    pool,
                    "Runtime.Unknown",
                    &format!("cannot open a Runtime API port: {e}"),
                );
                return;
            }
        };
        let runtime_api = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut cmd = Command::new(&c.binary);
        cmd.env_clear()
            .envs(&c.environment)
            .env("AWS_LAMBDA_FUNCTION_NAME", &c.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", c.memory_mb.to_string())
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", c.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{instance}"))
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.logs.system(
                    &c.name,
                    &format!("cannot start {}: {e}", c.binary.display()),
                );
                let message = format!("cannot start {}: {e}", c.binary.display());
                fail_queue(pool, "Runtime.InvalidEntrypoint", &message);
                return;
            }
        };
        self.logs.system(
            &c.name,
            &format!(
                "cold start: process {instance} (pid {}, runtime API {runtime_api})",
                child.id().unwrap_or(0)
            ),
        );
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = self.logs.clone();
            let name = c.name.clone();
            tokio::spawn(async move {
                // Bytes, not lines of UTF-8: one invalid byte must not stop the reader
                // (the child would then die of a broken pipe).
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                while matches!(reader.read_until(b'\n', &mut buf).await, Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(&buf);
                    logs.line(&name, line.trim_end_matches(['\n', '\r']));
                    buf.clear();
                }
            });
        }
        let (kill, killed) = oneshot::channel();
        let router = instance_api(Arc::clone(self), instance);
        let api = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        pool.instances.insert(
            instance,
            Instance {
                kill: Some(kill),
                api,
                initialised: false,
            },
        );
        // Lambda gives init 10 s; a process that never asks for work is stopped, so what
        // waits for it fails instead of hanging.
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(INIT_TIMEOUT).await;
            let mut pool = this.pool();
            let stuck = pool
                .instances
                .get(&instance)
                .is_some_and(|i| !i.initialised);
            if stuck {
                this.logs.system(
                    &this.config.name,
                    &format!("process {instance} did not finish init within {INIT_TIMEOUT:?}; stopping it"),
                );
                if let Some(kill) = pool
                    .instances
                    .get_mut(&instance)
                    .and_then(|i| i.kill.take())
                {
                    let _ = kill.send(());
                }
            }
        });
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.ok(),
                _ = killed => { let _ = child.kill().await; None }
            };
            this.instance_exited(instance, status);
        });
    }

    fn instance_exited(self: &Arc<Self>, instance: u64, status: Option<std::process::ExitStatus>) {
        let mut pool = self.pool();
        let Some(gone) = pool.instances.remove(&instance) else {
            return;
        };
        gone.api.abort();
        pool.idle.retain(|(i, _)| *i != instance);
        let lost: Vec<String> = pool
            .inflight
            .iter()
            .filter(|(_, f)| f.instance == Some(instance))
            .map(|(id, _)| id.clone())
            .collect();
        let how = status.map_or("was stopped".to_owned(), |s| format!("exited ({s})"));
        self.logs
            .system(&self.config.name, &format!("process {instance} {how}"));
        for id in lost {
            if let Some(f) = pool.inflight.remove(&id) {
                let _ = f.reply.send(Outcome::error(
                    "Runtime.ExitError",
                    format!("Runtime exited: {how}"),
                ));
            }
        }
        if !gone.initialised {
            // Init failed: like Lambda, fail what waits instead of retrying forever.
            fail_queue(
                &mut pool,
                "Runtime.ExitError",
                &format!("init failed: process {how}"),
            );
        } else if !pool.queue.is_empty() && pool.instances.len() < self.config.max_instances {
            self.spawn_instance(&mut pool);
        }
    }

    /// Kills every process that is running an invocation, as a crash mid-request would,
    /// and returns how many. Their invocations fail now (`Runtime.ExitError`), so an
    /// answer the process might still send before it dies is refused, not used.
    pub fn kill_busy(&self) -> usize {
        let mut pool = self.pool();
        let busy: Vec<(String, u64)> = pool
            .inflight
            .iter()
            .filter_map(|(id, f)| f.instance.map(|i| (id.clone(), i)))
            .collect();
        let mut killed = 0;
        for (id, instance) in busy {
            let Some(kill) = pool
                .instances
                .get_mut(&instance)
                .and_then(|i| i.kill.take())
            else {
                continue;
            };
            if let Some(f) = pool.inflight.remove(&id) {
                let _ = f.reply.send(Outcome::error(
                    "Runtime.ExitError",
                    "Runtime exited: killed by /_local/functions/…/kill",
                ));
            }
            self.logs.system(
                &self.config.name,
                &format!("killing process {instance} during {id}"),
            );
            let _ = kill.send(());
            killed += 1;
        }
        killed
    }

    /// Stops every process of this function.
    pub fn shutdown(&self) {
        let mut pool = self.pool();
        for i in pool.instances.values_mut() {
            if let Some(kill) = i.kill.take() {
                let _ = kill.send(());
            }
        }
    }

    fn headers(&self, id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let deadline = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
            + self.config.timeout.as_millis() as i128;
        let trace = format!(
            "Root=1-{:08x}-{}",
            time::OffsetDateTime::now_utc().unix_timestamp(),
            &uuid::Uuid::new_v4().simple().to_string()[..24]
        );
        for (k, v) in [
            ("lambda-runtime-aws-request-id", id.to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                self.config.arn.clone(),
            ),
            ("lambda-runtime-trace-id", trace),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        h
    }
}

fn fail_queue(pool: &mut Pool, kind: &str, message: &str) {
    for inv in std::mem::take(&mut pool.queue) {
        if let Some(f) = pool.inflight.remove(&inv.request_id) {
            let _ = f.reply.send(Outcome::error(kind, message));
        }
    }
}
