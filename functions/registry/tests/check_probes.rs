//! The health checker's connections, without the stack: a name is judged by the address
//! it resolves to, at the connection, and a refused one is never dialled.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aloft_registry::domain::HealthChecksAllow;
use aloft_registry::sweep::HttpChecker;

async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, count)
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn names_are_judged_by_their_resolved_addresses_at_the_connection() {
    let (port, connections) = counting_server().await;
    let hosts = HashMap::from([
        ("loop.test".to_owned(), ips(&["127.0.0.1"])),
        ("meta.test".to_owned(), ips(&["169.254.169.254"])),
        (
            "meta6.test".to_owned(),
            ips(&["fd00:ec2::254", "::ffff:169.254.169.254"]),
        ),
        ("private.test".to_owned(), ips(&["10.0.0.1"])),
        // A refused answer next to an allowed one: only the allowed one is dialled.
        (
            "mixed.test".to_owned(),
            ips(&["169.254.169.254", "127.0.0.1"]),
        ),
    ]);
    let timeout = Duration::from_millis(500);
    // (setting, host, passes)
    let cases = [
        ("none", "loop.test", false),
        ("private", "loop.test", false),
        ("loopback", "loop.test", true),
        ("private-and-loopback", "meta.test", false),
        ("private-and-loopback", "meta6.test", false),
        ("loopback", "private.test", false),
        ("loopback", "mixed.test", true),
        ("none", "mixed.test", false),
        // Literals are checked before any connection, under the same setting.
        ("none", "2130706433", false),
        ("none", "[::ffff:127.0.0.1]", false),
        ("loopback", "0x7f.1", true),
    ];
    let mut expected_connections = 0;
    for (setting, host, passes) in cases {
        let allow: HealthChecksAllow = setting.parse().unwrap();
        let checker = HttpChecker::with_hosts(allow.0, hosts.clone());
        let outcome = checker
            .probe(&format!("http://{host}:{port}/health"), timeout)
            .await;
        assert_eq!(outcome.is_ok(), passes, "{setting} {host}: {outcome:?}");
        if passes {
            expected_connections += 1;
        } else {
            assert!(
                outcome.unwrap_err().starts_with("refused"),
                "{setting} {host}"
            );
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            expected_connections,
            "{setting} {host}"
        );
    }
}
