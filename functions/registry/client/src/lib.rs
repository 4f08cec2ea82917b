//! The client a service embeds to take part in aloft's service registry.
//!
//! - [`RegistryClient::register`], [`RegistryClient::heartbeat`],
//!   [`RegistryClient::deregister`]: the lease calls.
//! - [`RegistryClient::keep_alive`]: a background loop that heartbeats at a fraction of
//!   the lease TTL and re-registers when aloft answers 404 (the lease lapsed or was
//!   evicted: Eureka's contract), until [`KeepAlive::shutdown`] deregisters.
//! - [`Discovery`]: discovery with a TTL cache that revalidates with `If-None-Match`
//!   (a 304 costs aloft one Query and no body), and that serves the last good answer when
//!   aloft is unreachable (stale-if-error), saying how old it is.
//!
//! ```no_run
//! # async fn example() -> Result<(), aloft_registry_client::ClientError> {
//! use std::time::Duration;
//! use aloft_registry_client::{Discovery, DiscoveryQuery, Registration, RegistryClient};
//!
//! let client = RegistryClient::new("https://api.example.com", "aloft_…");
//! let me = Registration { address: "10.0.3.7".into(), port: Some(8080), tags: vec!["eu".into()], ..Default::default() };
//! let lease = client.clone().keep_alive("checkout", me, Duration::from_secs(10)).await?;
//!
//! let discovery = Discovery::new(client, Duration::from_secs(5));
//! let found = discovery.instances("payments", &DiscoveryQuery::healthy()).await?;
//! if found.stale {
//!     tracing::warn!(age_secs = found.age.as_secs(), "aloft unreachable; using cached instances");
//! }
//! lease.shutdown().await; // deregisters
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("aloft is unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// The lease lapsed or was evicted; register again.
    #[error("lease for {service}/{instance_id} is gone")]
    LeaseLost {
        service: String,
        instance_id: String,
    },
    #[error("aloft answered {status}: {body}")]
    Rejected { status: u16, body: String },
}

/// What an instance registers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Registration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
}

/// aloft's answer to a registration or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lease {
    pub instance_id: String,
    pub lease_expires_at: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Heartbeat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<serde_json::Value>,
}

/// An instance as discovery returns it. Unknown fields are ignored, so newer servers
/// don't break older clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DiscoveredInstance {
    pub instance_id: String,
    pub address: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct DiscoveryBody {
    instances: Vec<DiscoveredInstance>,
    #[serde(default)]
    revision: u64,
}

#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    pub fn new(base_url: &str, api_key: &str) -> Self {
        // reqwest is built without a TLS provider of its own (aloft links ring, not
        // aws-lc): ring, unless the embedding service installed another first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn register(
        &self,
        service: &str,
        registration: &Registration,
    ) -> Result<Lease, ClientError> {
        let response = self
            .http
            .post(self.url(&format!("/services/{service}/instances")))
            .bearer_auth(&self.api_key)
            .json(registration)
            .send()
            .await?;
        parse(response).await
    }

    pub async fn heartbeat(
        &self,
        service: &str,
        instance_id: &str,
        beat: &Heartbeat,
    ) -> Result<Lease, ClientError> {
        let response = self
            .http
            .put(self.url(&format!(
                "/services/{service}/instances/{instance_id}/heartbeat"
            )))
            .bearer_auth(&self.api_key)
            .json(beat)
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ClientError::LeaseLost {
                service: service.into(),
                instance_id: instance_id.into(),
            });
        }
        parse(response).await
    }

    pub async fn deregister(&self, service: &str, instance_id: &str) -> Result<(), ClientError> {
        let response = self
            .http
            .delete(self.url(&format!("/services/{service}/instances/{instance_id}")))
            .bearer_auth(&self.api_key)
            .send()
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(ClientError::Rejected {
                status: s.as_u16(),
                body: response.text().await.unwrap_or_default(),
            }),
        }
    }

    /// Registers, then heartbeats every `interval` in the background, re-registering
    /// (with the same instance id) whenever the lease is gone.
    pub async fn keep_alive(
        self,
        service: &str,
        mut registration: Registration,
        interval: Duration,
    ) -> Result<KeepAlive, ClientError> {
        let lease = self.register(service, &registration).await?;
        registration.instance_id = Some(lease.instance_id.clone());
        let (stop, mut stopped) = watch::channel(false);
        let service = service.to_owned();
        let instance_id = lease.instance_id.clone();
        let client = self.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => break,
                }
                match client
                    .heartbeat(&service, &instance_id, &Heartbeat::default())
                    .await
                {
                    Ok(_) => {}
                    Err(ClientError::LeaseLost { .. }) => {
                        tracing::info!(%service, %instance_id, "lease lost; registering again");
                        if let Err(e) = client.register(&service, &registration).await {
                            tracing::warn!(%service, error = %e, "re-registration failed; will retry");
                        }
                    }
                    Err(e) => tracing::warn!(%service, error = %e, "heartbeat failed; will retry"),
                }
            }
            let _ = client.deregister(&service, &instance_id).await;
        });
        Ok(KeepAlive { lease, stop, task })
    }
}

async fn parse<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    if !status.is_success() {
        return Err(ClientError::Rejected {
            status: status.as_u16(),
            body: response.text().await.unwrap_or_default(),
        });
    }
    Ok(response.json().await?)
}

/// A running heartbeat loop.
pub struct KeepAlive {
    pub lease: Lease,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    /// Stops heartbeating and deregisters, so clients stop being sent here at once
    /// instead of when the lease lapses.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A discovery query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DiscoveryQuery {
    pub any_health: bool,
    pub tags: Vec<String>,
    pub version: Option<String>,
}

impl DiscoveryQuery {
    pub fn healthy() -> Self {
        Self::default()
    }

    fn query_string(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![(
            "health",
            if self.any_health { "any" } else { "passing" }.to_owned(),
        )];
        q.extend(self.tags.iter().map(|t| ("tag", t.clone())));
        if let Some(v) = &self.version {
            q.push(("version", v.clone()));
        }
        q
    }
}

/// A discovery answer and how fresh it is.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub instances: Vec<DiscoveredInstance>,
    pub revision: u64,
    /// Time since aloft last confirmed this answer.
    pub age: Duration,
    /// aloft could not be reached and this is the last good answer.
    pub stale: bool,
}

struct Cached {
    body: DiscoveryBody,
    etag: Option<String>,
    confirmed: Instant,
}

/// One cached answer, locked on its own so one refresh per key runs at a time.
type CacheSlot = Arc<Mutex<Option<Cached>>>;

/// Discovery with a TTL cache, revalidation and stale-if-error.
pub struct Discovery {
    client: RegistryClient,
    ttl: Duration,
    cache: Mutex<HashMap<(String, DiscoveryQuery), CacheSlot>>,
}

impl Discovery {
    pub fn new(client: RegistryClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn instances(
        &self,
        service: &str,
        query: &DiscoveryQuery,
    ) -> Result<Discovered, ClientError> {
        let slot = {
            let mut cache = self.cache.lock().await;
            cache
                .entry((service.to_owned(), query.clone()))
                .or_default()
                .clone()
        };
        // One refresh per key at a time; others wait and then read the fresh entry.
        let mut entry = slot.lock().await;
        if let Some(c) = entry.as_ref()
            && c.confirmed.elapsed() < self.ttl
        {
            return Ok(answer(c, false));
        }
        let mut request = self
            .client
            .http
            .get(self.client.url(&format!("/services/{service}/instances")))
            .bearer_auth(&self.client.api_key)
            .query(&query.query_string());
        if let Some(etag) = entry.as_ref().and_then(|c| c.etag.clone()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let outcome = match request.send().await {
            Ok(r) if r.status() == StatusCode::NOT_MODIFIED && entry.is_some() => Ok(None),
            Ok(r) if r.status().is_success() => {
                let etag = r
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                r.json::<DiscoveryBody>()
                    .await
                    .map(|body| Some((body, etag)))
                    .map_err(ClientError::from)
            }
            Ok(r) if r.status().is_server_error() => Err(ClientError::Rejected {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            }),
            // A 4xx is our mistake, not an outage: don't hide it behind the cache.
            Ok(r) => {
                return Err(ClientError::Rejected {
                    status: r.status().as_u16(),
                    body: r.text().await.unwrap_or_default(),
                });
            }
            Err(e) => Err(ClientError::from(e)),
        };
        match (outcome, entry.as_mut()) {
            (Ok(None), Some(c)) => {
                c.confirmed = Instant::now();
                Ok(answer(c, false))
            }
            (Ok(Some((body, etag))), _) => {
                let fresh = Cached {
                    body,
                    etag,
                    confirmed: Instant::now(),
                };
                let result = answer(&fresh, false);
                *entry = Some(fresh);
                Ok(result)
            }
            (Err(e), Some(c)) => {
                tracing::warn!(%service, error = %e, age_secs = c.confirmed.elapsed().as_secs(), "serving stale discovery");
                Ok(answer(c, true))
            }
            (Err(e), None) => Err(e),
            (Ok(None), None) => Err(ClientError::Rejected {
                status: 304,
                body: "304 without a cached answer".into(),
            }),
        }
    }
}

fn answer(c: &Cached, stale: bool) -> Discovered {
    Discovered {
        instances: c.body.instances.clone(),
        revision: c.body.revision,
        age: c.confirmed.elapsed(),
        stale,
    }
}
