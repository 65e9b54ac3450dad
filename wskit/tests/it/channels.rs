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
    let mut room = Vec::new();
    for _ in 0..3 {
        room.push(
            within(wskit::connect(format!("ws://{addr}/room")))
                .await
                .unwrap(),
        );
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
            let program = std::path::Path::new("/usr/bin/redis-server");
            if !program.exists() {
                let message =
                    "redis-server is not installed (Debian: apt-get install redis-server)";
                assert!(!on_ci(), "{message}");
                let _ = writeln!(std::io::stderr(), "skipped: {message}");
                return None;
            }
            let child = Command::new(program)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
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
        // Publishing works again on every node, at the first try.
        channels[2].publish("room", "n2:0").await.unwrap();
        for k in 1..10 {
            channels[k % 3]
                .publish("room", format!("after{}:{k}", k % 3))
                .await
                .unwrap();
        }
        // The message published during the outage reached its own node's subscribers only
        // (clients 0, 3, 6, ... are on node 0); then everyone gets n2:0 first.
        for (i, ws) in room.iter().enumerate() {
            if i % 3 == 0 {
                assert_eq!(within(ws.recv()).await.unwrap(), "n0:lost");
            }
            assert_eq!(within(ws.recv()).await.unwrap(), "n2:0");
        }
        expect_all(&room, 9).await;
        drop(servers);
    }
}
