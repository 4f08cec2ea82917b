//! The registry client crate against the real local stack, reached through a TCP relay
//! this test can cut, so "aloft is unreachable" is a real network failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aloft_e2e::{Stack, unique};
use aloft_registry_client::{Discovery, DiscoveryQuery, Registration, RegistryClient};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards every connection to `target` until `cut`.
struct Relay {
    url: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { url, tasks }
    }

    /// Stops accepting and drops every open connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn discovery_serves_its_last_good_answer_while_aloft_is_unreachable() {
    let stack = Stack::connect().await;
    let target = stack.url.trim_start_matches("http://").to_owned();
    let relay = Relay::start(target).await;
    let client = RegistryClient::new(&relay.url, &stack.admin_key);
    let service = unique("client-");

    let keep_alive = client
        .clone()
        .keep_alive(
            &service,
            Registration {
                instance_id: Some("web-1".into()),
                address: "10.1.2.3".into(),
                port: Some(8080),
                ttl_seconds: Some(30),
                ..Registration::default()
            },
            Duration::from_secs(5),
        )
        .await
        .expect("registers through the relay");

    let discovery = Discovery::new(client, Duration::from_millis(200));
    let fresh = discovery
        .instances(&service, &DiscoveryQuery::healthy())
        .await
        .unwrap();
    assert!(!fresh.stale);
    assert_eq!(fresh.instances.len(), 1);
    assert_eq!(fresh.instances[0].instance_id, "web-1");

    // After the TTL it revalidates (a 304 from aloft) and stays fresh.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revalidated = discovery
        .instances(&service, &DiscoveryQuery::healthy())
        .await
        .unwrap();
    assert!(!revalidated.stale);
    assert!(revalidated.age < Duration::from_millis(200));

    relay.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = discovery
        .instances(&service, &DiscoveryQuery::healthy())
        .await
        .expect("the last good answer, not an error");
    assert!(stale.stale, "marked stale");
    assert!(stale.age >= Duration::from_millis(300), "{:?}", stale.age);
    assert_eq!(stale.instances, fresh.instances);
    keep_alive.shutdown().await;
}
