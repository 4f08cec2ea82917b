//! One function process behind a Lambda Runtime API of our own: the four routes
//! `lambda_runtime` calls (`next`, `response`, `error`, `init/error`), with the moments
//! that matter recorded: process start, first `next` (init done), each response.
//!
//! aloft-local serves the same API for `make run`; this one is small and single-process
//! so the harness owns every timestamp and the process id it reads `/proc` for.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:footprint";

struct Invocation {
    id: String,
    payload: Bytes,
}

/// How an invocation ended, and when the harness heard.
pub struct Outcome {
    pub body: Bytes,
    pub error: bool,
    pub at: Instant,
}

struct Shared {
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    first_next: Mutex<Option<oneshot::Sender<Instant>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

pub struct Sandbox {
    pub pid: u32,
    pub started: Instant,
    child: tokio::process::Child,
    invoke: mpsc::Sender<Invocation>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    first_next: Option<oneshot::Receiver<Instant>>,
    server: tokio::task::JoinHandle<()>,
    seq: u64,
}

impl Sandbox {
    /// Starts `binary` with `env` (and the variables Lambda sets) against a fresh Runtime API.
    pub async fn start(binary: &Path, env: &BTreeMap<String, String>, log: &Path) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?.to_string();
        let (invoke, next) = mpsc::channel(1);
        let (first_tx, first_rx) = oneshot::channel();
        let (out_tx, outcomes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next: tokio::sync::Mutex::new(next),
            first_next: Mutex::new(Some(first_tx)),
            outcomes: out_tx,
        });
        let server = tokio::spawn(serve(listener, shared));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .envs(env)
            .env("AWS_LAMBDA_FUNCTION_NAME", "footprint")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/footprint")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "footprint")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            pid: child.id().unwrap_or(0),
            started,
            child,
            invoke,
            outcomes,
            first_next: Some(first_rx),
            server,
            seq: 0,
        })
    }

    /// When the process first asked for an event: the end of its init.
    pub async fn initialised(&mut self) -> Result<Instant> {
        let rx = self
            .first_next
            .take()
            .ok_or_else(|| anyhow!("already initialised"))?;
        tokio::select! {
            at = rx => Ok(at?),
            status = self.child.wait() => bail!("process exited during init: {}", status?),
            () = tokio::time::sleep(Duration::from_secs(20)) => bail!("no /next within 20 s"),
        }
    }

    /// Hands the process one event; returns the outcome and the time from hand-over to reply.
    pub async fn invoke(&mut self, payload: Bytes) -> Result<(Outcome, Duration)> {
        self.seq += 1;
        let id = format!("fp-{}-{}", self.pid, self.seq);
        let sent = Instant::now();
        self.invoke
            .send(Invocation { id, payload })
            .await
            .map_err(|_| anyhow!("runtime API closed"))?;
        tokio::select! {
            out = self.outcomes.recv() => {
                let out = out.ok_or_else(|| anyhow!("runtime API closed"))?;
                let took = out.at - sent;
                Ok((out, took))
            }
            status = self.child.wait() => bail!("process exited during an invocation: {}", status?),
            () = tokio::time::sleep(Duration::from_secs(30)) => bail!("no response within 30 s"),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| route(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    if rest == "invocation/next" {
        let at = Instant::now();
        if let Some(tx) = shared.first_next.lock().ok().and_then(|mut f| f.take()) {
            let _ = tx.send(at);
        }
        let inv = shared.next.lock().await.recv().await;
        let Some(inv) = inv else {
            return Ok(reply(StatusCode::GONE, "{}"));
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 10_000;
        let mut r = Response::new(Full::new(inv.payload));
        let h = r.headers_mut();
        for (k, v) in [
            ("lambda-runtime-aws-request-id", inv.id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", ARN.to_owned()),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_owned(),
            ),
        ] {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        }
        return Ok(r);
    }
    let error = rest.ends_with("/error");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let at = Instant::now();
    if rest.starts_with("invocation/") {
        let _ = shared.outcomes.send(Outcome { body, error, at });
    } else if rest == "init/error" {
        eprintln!("init error: {}", String::from_utf8_lossy(&body));
    }
    Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
}

/// CPU time (user + system) the process has used so far. `/proc` counts in USER_HZ,
/// which Linux fixes at 100 for user space on every architecture.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm)".
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM for {pid}"))
}
