//! Channels: in one process, and across nodes through a real Redis (Debian's `redis-server`,
//! started here on a free port with a temporary directory; "skipped" outside CI when it is not
//! installed, a failure under CI).

use std::collections::HashMap;
use std::time::Duration;

use wskit::{Channels, Connection, Message};

use crate::support::{eventually, within};

/// A server whose connections subscribe to the channel their path names (`/room`), then stay.
async fn node(channels: Channels) -> (wskit::Server, std::net::SocketAddr) {
    let server = within(wskit::serve(
        move |ws: Connection| {
            let channels = channels.clone();
            async move {
                let channel = ws.path().trim_start_matches('/').to_owned();
                channels.subscribe(&ws, &channel);
                while ws.recv().await.is_ok() {}
            }
        },
        "127.0.0.1:0",
    ))
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

#[tokio::test]
async fn in_process_channels_deliver_once_and_end_with_the_connection() {
    let channels = Channels::new();
    let (_server, addr) = node(channels.clone()).await;
    // Compressed connections get the message framed for each; uncompressed ones share a frame.
    let mut room = Vec::new();
    for compressed in [true, false, true] {
        let connect = wskit::connect(format!("ws://{addr}/room"));
        let connect = if compressed {
            connect
        } else {
            connect.no_compression()
        };
        room.push(within(connect).await.unwrap());
    }
    let other = within(wskit::connect(format!("ws://{addr}/other")))
        .await
        .unwrap();
    eventually("3 subscribers", || channels.subscribers("room") == 3).await;
    channels.publish("room", "text").await.unwrap();
    channels.publish("room", vec![1u8, 2, 3]).await.unwrap();
    channels.publish("other", "elsewhere").await.unwrap();
    for ws in &room {
        assert_eq!(within(ws.recv()).await.unwrap(), "text");
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from(vec![1u8, 2, 3])
        );
    }
    assert_eq!(within(other.recv()).await.unwrap(), "elsewhere");
    assert_eq!(channels.delivered(), 7);
    // A closed connection's subscription ends by itself.
    let gone = room.pop().unwrap();
    gone.close(wskit::CloseCode::NORMAL, "").await.unwrap();
    eventually("2 subscribers", || channels.subscribers("room") == 2).await;
    assert_eq!(channels.skipped(), 0);
}

#[cfg(feature = "redis")]
pub(crate) mod redis {
    use super::*;
    use std::io::Write as _;
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};

    use crate::example_support::{TempDir, on_ci};

    /// A redis-server on `port`, with its files in `dir`; killed when dropped.
    pub(crate) struct Redis {
        child: Child,
    }

    impl Redis {
        /// Start it; `None` (and "skipped") outside CI when redis-server is not installed.
        pub(crate) async fn start(port: u16, dir: &TempDir) -> Option<Self> {
            Self::start_with(port, dir, &["--port", &port.to_string()]).await
        }

        /// Start it with `args` (which say where it listens: `--port`, or `--tls-port` with
        /// `--port 0`), and wait until `port` accepts connections.
        pub(crate) async fn start_with(port: u16, dir: &TempDir, args: &[&str]) -> Option<Self> {
            let program = std::path::Path::new("/usr/bin/redis-server");
            if !program.exists() {
                let message =
                    "redis-server is not installed (Debian: apt-get install redis-server)";
                assert!(!on_ci(), "{message}");
                let _ = writeln!(std::io::stderr(), "skipped: {message}");
                return None;
            }
            let child = Command::new(program)
                .args(["--bind", "127.0.0.1"])
                .args(args)
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&dir.0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let redis = Self { child };
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Some(redis);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("redis-server does not listen on {port}");
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub(crate) fn free_port() -> u16 {
        crate::support::free_addr().port()
    }

    /// `count` clients of `channel`, spread over `nodes` in turn.
    async fn clients(nodes: &[SocketAddr], count: usize, channel: &str) -> Vec<Connection> {
        let mut clients = Vec::new();
        for i in 0..count {
            let addr = nodes[i % nodes.len()];
            clients.push(
                within(wskit::connect(format!("ws://{addr}/{channel}")))
                    .await
                    .unwrap(),
            );
        }
        clients
    }

    /// Receive `count` messages on each client and check them: each `n{node}:{seq}` once, in
    /// order per publishing node.
    async fn expect_all(clients: &[Connection], count: usize) {
        for ws in clients {
            let mut last: HashMap<String, i64> = HashMap::new();
            for _ in 0..count {
                let message = within(ws.recv()).await.unwrap();
                let text = message.as_text().unwrap().to_owned();
                let (node, seq) = text.split_once(':').unwrap();
                let seq: i64 = seq.parse().unwrap();
                let previous = last.insert(node.to_owned(), seq).unwrap_or(-1);
                assert!(seq > previous, "{text} after {previous} from {node}");
            }
        }
    }

    /// A node may start before Redis listens (both started at once): it waits for it.
    #[tokio::test]
    async fn a_node_started_before_redis_waits_for_it() {
        let dir = TempDir::new();
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}/");
        let early = tokio::spawn(async move { Channels::redis(&url).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !early.is_finished(),
            "gave up on a Redis that was not there yet"
        );
        let Some(_redis) = Redis::start(port, &dir).await else {
            early.abort();
            return;
        };
        let channels = within(early).await.unwrap().unwrap();
        assert_eq!(channels.subscriptions(), 1);
    }

    /// `future`'s output within 2 s.
    async fn at_once<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(2), future)
            .await
            .expect("not answered at once")
    }

    /// One message from `from` reaches a subscriber on `to`, and the other way round.
    async fn deliver_between(a: &Channels, b: &Channels) {
        let (_sa, addr_a) = node(a.clone()).await;
        let (_sb, addr_b) = node(b.clone()).await;
        let on_a = clients(&[addr_a], 1, "room").await.remove(0);
        let on_b = clients(&[addr_b], 1, "room").await.remove(0);
        eventually("a subscriber on each node", || {
            a.subscribers("room") == 1 && b.subscribers("room") == 1
        })
        .await;
        a.publish("room", "from a").await.unwrap();
        b.publish("room", "from b").await.unwrap();
        // Each once; in either order (Pub/Sub orders one publisher's messages, and a node's
        // own come at once while the other's go round through Redis).
        for ws in [&on_a, &on_b] {
            let mut got = Vec::new();
            for _ in 0..2 {
                let message = within(ws.recv()).await.unwrap();
                got.push(message.as_text().unwrap().to_owned());
            }
            got.sort();
            assert_eq!(got, ["from a", "from b"]);
        }
    }

    /// A Redis with a password, on a TLS port whose certificate a private CA signed: the
    /// password in the URL works and a wrong one is refused without being repeated;
    /// `rediss://` works with the CA given through `redis_client`, and is refused without it.
    #[tokio::test]
    async fn redis_with_a_password_and_over_tls_with_a_private_ca() {
        let dir = TempDir::new();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let file = |name: &str, pem: String| {
            let path = dir.0.join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (cert_file, key_file) = (
            file("redis.crt", cert.pem()),
            file("redis.key", key.serialize_pem()),
        );
        let ca_file = file("ca.crt", ca.pem());
        let (port, tls_port) = (free_port(), free_port());
        let (port_arg, tls_port_arg) = (port.to_string(), tls_port.to_string());
        let args = [
            "--port",
            &port_arg,
            "--tls-port",
            &tls_port_arg,
            "--tls-cert-file",
            &cert_file,
            "--tls-key-file",
            &key_file,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cr3t-pa55",
        ];
        let Some(_redis) = Redis::start_with(port, &dir, &args).await else {
            return;
        };

        // The password.
        for url in [
            format!("redis://127.0.0.1:{port}/"),
            format!("redis://:wr0ng-pa55@127.0.0.1:{port}/"),
        ] {
            // At once: not after the seconds a retrying connection would take.
            let error = at_once(Channels::redis(&url)).await.unwrap_err();
            assert!(matches!(error, wskit::Error::Broker(_)), "{error:?}");
            let message = error.to_string();
            assert!(!message.contains("wr0ng-pa55"), "{message}");
            assert!(message.to_lowercase().contains("auth"), "{message}");
        }
        let url = format!("redis://:s3cr3t-pa55@127.0.0.1:{port}/");
        let (a, b) = (
            within(Channels::redis(&url)).await.unwrap(),
            within(Channels::redis(&url)).await.unwrap(),
        );
        deliver_between(&a, &b).await;

        // TLS, the server checked against the private CA.
        let tls_url = format!("rediss://:s3cr3t-pa55@localhost:{tls_port}/");
        let error = at_once(Channels::redis(&tls_url)).await.unwrap_err();
        assert!(matches!(error, wskit::Error::Broker(_)), "{error:?}");
        assert!(
            error.to_string().to_lowercase().contains("certificate"),
            "{error}"
        );
        let with_ca = || {
            ::redis::Client::build_with_tls(
                tls_url.as_str(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.pem().into_bytes()),
                },
            )
            .unwrap()
        };
        let (a, b) = (
            within(Channels::redis_client(with_ca())).await.unwrap(),
            within(Channels::redis_client(with_ca())).await.unwrap(),
        );
        deliver_between(&a, &b).await;
    }

    #[tokio::test]
    async fn three_nodes_through_redis_deliver_every_message_once() {
        let dir = TempDir::new();
        let port = free_port();
        let Some(redis) = Redis::start(port, &dir).await else {
            return;
        };
        let url = format!("redis://127.0.0.1:{port}/");
        let mut channels = Vec::new();
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let node_channels = within(Channels::redis(&url)).await.unwrap();
            assert_eq!(node_channels.subscriptions(), 1);
            let (server, addr) = node(node_channels.clone()).await;
            channels.push(node_channels);
            servers.push(server);
            addrs.push(addr);
        }
        let room = clients(&addrs, 100, "room").await;
        eventually("100 subscribers over 3 nodes", || {
            channels
                .iter()
                .map(|c| c.subscribers("room"))
                .sum::<usize>()
                == 100
        })
        .await;

        // 1,000 messages, published from the three nodes in turn; and binary stays binary.
        let count = 1000;
        let mut seq = [0i64; 3];
        for k in 0..count {
            let n = k % 3;
            channels[n]
                .publish("room", format!("n{n}:{}", seq[n]))
                .await
                .unwrap();
            seq[n] += 1;
        }
        expect_all(&room, count).await;
        channels[1].publish("room", vec![0u8, 255]).await.unwrap();
        for ws in &room {
            assert_eq!(
                within(ws.recv()).await.unwrap(),
                Message::from(vec![0u8, 255])
            );
        }
        let delivered: u64 = channels.iter().map(Channels::delivered).sum();
        assert_eq!(delivered, 100 * 1001, "every delivery made once");
        for node in &channels {
            assert_eq!(node.skipped(), 0);
        }

        // Redis restarts: publishing fails meanwhile; the nodes subscribe again, and what is
        // published after that reaches everyone.
        drop(redis);
        let error = channels[0].publish("room", "n0:lost").await.unwrap_err();
        assert!(matches!(error, wskit::Error::Broker(_)), "{error:?}");
        let _redis = Redis::start(port, &dir).await.unwrap();
        for node in &channels {
            tokio::time::timeout(Duration::from_secs(20), node.wait_subscribed(2))
                .await
                .expect("the node subscribes again");
        }
        // The message published during the outage reached its own node's subscribers only
        // (clients 0, 3, 6, ... are on node 0); then everyone gets the first message published
        // after the restart. Pub/Sub orders one publisher's messages only, and a node's own
        // reach its subscribers at once: the next ones are published once this one arrived.
        channels[2].publish("room", "n2:0").await.unwrap();
        for (i, ws) in room.iter().enumerate() {
            if i % 3 == 0 {
                assert_eq!(within(ws.recv()).await.unwrap(), "n0:lost");
            }
            assert_eq!(within(ws.recv()).await.unwrap(), "n2:0");
        }
        // Publishing works again on every node, at the first try.
        for k in 1..10 {
            channels[k % 3]
                .publish("room", format!("after{}:{k}", k % 3))
                .await
                .unwrap();
        }
        expect_all(&room, 9).await;
        drop(servers);
    }
}
