//! AWS clients, built once per cold start.
//!
//! [`sdk_config`] reads what the Lambda sandbox provides (region, the execution role's
//! credentials, and `AWS_ENDPOINT_URL` where one is set), so the same code talks to moto
//! locally and to AWS when deployed; nothing here knows which. Tools run by people
//! (`create-admin-key`) use [`operator_sdk_config`] instead: profiles, SSO, everything.
//!
//! Every client built here carries one interceptor that times its calls, so a request's
//! latency splits into time inside DynamoDB, SQS and other AWS calls, and the rest
//! ([`measure_calls`], used by the request telemetry). No capability writes timing code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::identity::IdentityCache;
use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// The longest one AWS call may take, retries included, unless `AWS_CALL_TIMEOUT_MS`
/// says otherwise (template parameter `AwsCallTimeoutMs`). Below the shortest function
/// timeout in template.yaml (the authorizer's 5 s), so a throttled or unreachable
/// service ends in an error the function answers, never in Lambda killing it.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// The call timeout in force: `AWS_CALL_TIMEOUT_MS`, or [`DEFAULT_CALL_TIMEOUT`] when it
/// is unset or not a number of milliseconds.
pub fn call_timeout() -> Duration {
    std::env::var("AWS_CALL_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_CALL_TIMEOUT)
}

/// The SDK's own default for connecting, which aws-config's loader would add.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The configuration every function builds its clients from, read from the environment
/// Lambda gives a function: `AWS_REGION`, the execution role's `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and `AWS_ENDPOINT_URL` where set
/// (`local/` sets it to moto). [`call_timeout`] bounds every call, with the SDK's standard
/// retries (3 attempts, exponential backoff with jitter; `AWS_MAX_ATTEMPTS` changes the
/// count). `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT` are honoured. One
/// HTTPS client, trusting the system's CA bundle ([`crate::trust_roots`]), serves every
/// client built from it.
///
/// Not aws-config's default chain, on purpose: in a Lambda sandbox that chain always ends
/// at these variables, and building it (profile files, IMDS, and an STS client for web
/// identity) cost about 1 ms of every cold start's CPU and 0.3 MB of every binary (issue
/// 13, README "Performance"). Missing credentials surface as an error on the first call,
/// naming the variable. Not read: profiles, container and web-identity credentials,
/// per-service endpoints (`AWS_ENDPOINT_URL_DYNAMODB`), `AWS_RETRY_MODE`,
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` and `AWS_SDK_UA_APP_ID`.
pub async fn sdk_config() -> SdkConfig {
    let region = EnvironmentVariableRegionProvider::new().region().await;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let flag = |name: &str| var(name).map(|v| v.trim().eq_ignore_ascii_case("true"));
    let retries = match var("AWS_MAX_ATTEMPTS").and_then(|n| n.trim().parse::<u32>().ok()) {
        Some(attempts) if attempts > 0 => RetryConfig::standard().with_max_attempts(attempts),
        _ => RetryConfig::standard(),
    };
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .identity_cache(IdentityCache::lazy().build())
        .timeout_config(timeouts())
        .retry_config(retries)
        .http_client(crate::trust_roots::https_client());
    config.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT"));
    config.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    config.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    config.build()
}

/// For tools a person runs with their own credentials (`create-admin-key`): aws-config's
/// whole default chain (environment, profiles, SSO, web identity, IMDS), with the same
/// timeouts as the functions.
pub async fn operator_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .http_client(crate::trust_roots::https_client())
        .load()
        .await
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(call_timeout())
        .build()
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(TimeCalls(AwsPart::Database))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(config)
        .interceptor(TimeCalls(AwsPart::Messaging))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

pub fn secrets_manager(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(config)
        .interceptor(TimeCalls(AwsPart::OtherAws))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

pub fn cloudwatch(config: &SdkConfig) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::config::Builder::from(config)
        .interceptor(TimeCalls(AwsPart::OtherAws))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Which part of a request's latency an AWS call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsPart {
    Database,
    Messaging,
    OtherAws,
}

/// Time spent inside AWS calls during one request, by part. Calls that overlap (run
/// concurrently) each count in full.
#[derive(Debug, Default)]
pub struct CallTimes {
    micros: [AtomicU64; 3],
}

impl CallTimes {
    fn add(&self, part: AwsPart, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.micros[part as usize].fetch_add(micros, Ordering::Relaxed);
    }

    pub fn get(&self, part: AwsPart) -> Duration {
        Duration::from_micros(self.micros[part as usize].load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    static CALL_TIMES: Arc<CallTimes>;
}

/// Runs `fut`, counting the time its AWS calls (through clients built here) take.
pub async fn measure_calls<F: Future>(fut: F) -> (F::Output, Arc<CallTimes>) {
    let times = Arc::new(CallTimes::default());
    let out = CALL_TIMES.scope(times.clone(), fut).await;
    (out, times)
}

/// When the current operation started (per operation, retries and backoff included).
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The interceptor every client carries: times each operation into the current
/// request's [`CallTimes`], if the request is being measured.
#[derive(Debug, Clone, Copy)]
struct TimeCalls(AwsPart);

impl Intercept for TimeCalls {
    fn name(&self) -> &'static str {
        "TimeCalls"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Started(at)) = cfg.load::<Started>() {
            let elapsed = at.elapsed();
            // Outside a measured request (a schedule, a queue batch) there is nothing to add to.
            let _ = CALL_TIMES.try_with(|t| t.add(self.0, elapsed));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_counted_into_the_request_that_made_them() {
        let ((), times) = measure_calls(async {
            CALL_TIMES.with(|t| {
                t.add(AwsPart::Database, Duration::from_millis(3));
                t.add(AwsPart::Database, Duration::from_millis(2));
                t.add(AwsPart::Messaging, Duration::from_millis(1));
            });
        })
        .await;
        assert_eq!(times.get(AwsPart::Database), Duration::from_millis(5));
        assert_eq!(times.get(AwsPart::Messaging), Duration::from_millis(1));
        assert_eq!(times.get(AwsPart::OtherAws), Duration::ZERO);
        // Outside a measured request, recording is a no-op rather than a panic.
        assert!(CALL_TIMES.try_with(|_| ()).is_err());
    }

    #[tokio::test]
    async fn the_interceptor_times_real_sdk_calls_by_part() {
        // An endpoint nothing listens on: the call fails fast, and still took time.
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("k", "s", None, None, "test"),
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(crate::trust_roots::https_client())
            .build();
        let ddb = dynamodb(&config);
        let (result, times) = measure_calls(async { ddb.list_tables().send().await }).await;
        assert!(result.is_err());
        assert!(times.get(AwsPart::Database) > Duration::ZERO);
        assert_eq!(times.get(AwsPart::Messaging), Duration::ZERO);
    }
}
