//! Named channels: connections subscribe, `publish` reaches every subscriber. In one process by
//! default; with the `redis` feature, [`Channels::redis`] fans each message out to every node
//! through Redis Pub/Sub, the seeds' advice for more than one process.
//!
//! ```no_run
//! use wskit::{Channels, Connection};
//!
//! async fn chat(ws: Connection, channels: Channels) -> wskit::Result<()> {
//!     channels.subscribe(&ws, "lobby");
//!     while let Some(message) = ws.clone().next().await {
//!         channels.publish("lobby", message?).await?;
//!     }
//!     Ok(()) // the subscription ends with the connection
//! }
//!
//! # async fn run() -> wskit::Result<()> {
//! let channels = Channels::new(); // or Channels::redis("redis://127.0.0.1:6379").await?
//! let server = wskit::serve(move |ws| chat(ws, channels.clone()), "localhost:8765").await?;
//! # Ok(()) }
//! ```
//!
//! Delivery to a node's own subscribers uses [`broadcast`](crate::broadcast): each message is
//! framed once, and a subscriber too slow to keep up (its write buffer above its limit) is
//! skipped, never waited for; [`skipped`](Channels::skipped) counts the deliveries skipped.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wskit_proto::Message;

use crate::connection::Connection;
use crate::connection_set::ConnectionSet;
use crate::error::Result;

/// Channels of connections, in this process or across processes through a broker. Cheap to
/// clone: clones share the channels.
#[derive(Clone, Default)]
pub struct Channels {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    channels: Mutex<HashMap<String, ConnectionSet>>,
    skipped: AtomicU64,
    delivered: AtomicU64,
    #[cfg(feature = "redis")]
    broker: Option<redis_broker::Broker>,
    /// Dropped with the channels: the broker's listener then stops.
    #[cfg(feature = "redis")]
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Channels {
    /// Channels in this process only: no broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribe `ws` to `channel`; `false` if it was subscribed already. The subscription
    /// ends when the connection closes, or with [`unsubscribe`](Self::unsubscribe).
    pub fn subscribe(&self, ws: &Connection, channel: &str) -> bool {
        let mut channels = self.lock();
        channels.entry(channel.to_owned()).or_default().insert(ws)
    }

    /// Unsubscribe `ws` from `channel`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, ws: &Connection, channel: &str) -> bool {
        let mut channels = self.lock();
        let Some(set) = channels.get(channel) else {
            return false;
        };
        let removed = set.remove(ws);
        if set.is_empty() {
            channels.remove(channel);
        }
        removed
    }

    /// How many connections of this process are subscribed to `channel`.
    pub fn subscribers(&self, channel: &str) -> usize {
        self.lock().get(channel).map_or(0, ConnectionSet::len)
    }

    /// Send `message` to every subscriber of `channel`: this process's at once, the other
    /// nodes' through the broker, if there is one. Each subscriber receives it once, text as
    /// text and binary as binary.
    ///
    /// # Errors
    ///
    /// [`Error::Broker`](crate::Error::Broker) when the broker cannot take the message (Redis
    /// is down, say): this node's subscribers got it, the other nodes' did not. Messages are
    /// not buffered during an outage; Pub/Sub delivers at most once anyway.
    pub async fn publish(&self, channel: &str, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        #[cfg(feature = "redis")]
        if let Some(broker) = &self.inner.broker {
            // The other nodes' copy leaves first: polled once, the command is usually queued
            // for the connection to Redis already (not while that connection is being made
            // again), and on a current-thread runtime its task then runs before the tasks of
            // the local subscribers that the delivery below wakes, rather than after them all.
            let mut remote = std::pin::pin!(broker.publish(channel, &message));
            let sent =
                std::future::poll_fn(|cx| std::task::Poll::Ready(remote.as_mut().poll(cx))).await;
            self.deliver(channel, message.clone());
            return match sent {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => remote.await,
            };
        }
        self.deliver(channel, message);
        Ok(())
    }

    /// Deliveries skipped so far: subscribers that were too slow (or closing) when a message
    /// came for them.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Deliveries made so far to this process's subscribers.
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Deliver to this process's subscribers.
    fn deliver(&self, channel: &str, message: Message) {
        // Not `lock()`: checking every channel for closed subscribers at each message would
        // cost a pass over every subscriber of every channel. A channel whose subscribers all
        // left goes when a message finds nobody, or at the next subscription change.
        let Some(set) = self.locked().get(channel).cloned() else {
            return;
        };
        let broadcast = set.broadcast(message);
        if broadcast.sent == 0 && broadcast.skipped.is_empty() {
            let mut channels = self.locked();
            if channels.get(channel).is_some_and(ConnectionSet::is_empty) {
                channels.remove(channel);
            }
        }
        self.inner
            .delivered
            .fetch_add(broadcast.sent as u64, Ordering::Relaxed);
        if !broadcast.skipped.is_empty() {
            self.inner
                .skipped
                .fetch_add(broadcast.skipped.len() as u64, Ordering::Relaxed);
            tracing::debug!(
                channel,
                skipped = broadcast.skipped.len(),
                "slow subscribers skipped"
            );
        }
    }

    /// The channels, without the ones whose subscribers all left (a set busy with a
    /// broadcast is kept this time rather than waited for: the map's lock stops every other
    /// channel's deliveries meanwhile).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnectionSet>> {
        let mut channels = self.locked();
        channels.retain(|_, set| !set.is_surely_empty());
        channels
    }

    /// The channels as they are.
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnectionSet>> {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("channels", &self.lock().len())
            .field("skipped", &self.skipped())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "redis")]
mod redis_broker {
    //! Redis Pub/Sub behind [`Channels`]: a node publishes with `PUBLISH wskit:CHANNEL
    //! PAYLOAD` and listens with `PSUBSCRIBE wskit:*`; the payload says what kind of message
    //! it is and which node sent it, so that a node skips its own (already delivered at once).

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use futures_core::Stream;
    use wskit_proto::Message;

    use super::{Channels, Inner};
    use crate::error::{Error, Result};

    /// The prefix of every Redis channel wskit uses.
    const PREFIX: &str = "wskit:";

    pub(super) struct Broker {
        node: [u8; 16],
        publisher: redis::aio::ConnectionManager,
        /// How many times the listener (re)subscribed.
        pub(super) subscriptions: Arc<AtomicU64>,
        pub(super) subscribed: Arc<tokio::sync::Notify>,
    }

    impl Broker {
        pub(super) async fn publish(&self, channel: &str, message: &Message) -> Result<()> {
            let payload = encode(&self.node, message);
            let mut command = redis::cmd("PUBLISH");
            command.arg(format!("{PREFIX}{channel}")).arg(payload);
            let mut publisher = self.publisher.clone();
            let result = match command.query_async::<i64>(&mut publisher).await {
                // A connection that Redis's restart broke is found broken by the first
                // command after it; the manager then reconnects, and the same command, sent
                // again, waits for that. Only then: after a timeout the command may have run,
                // and sending it again would deliver it twice.
                Err(error) if error.is_connection_dropped() => {
                    tracing::debug!(%error, "publishing again on a new connection to Redis");
                    command.query_async::<i64>(&mut publisher).await
                }
                other => other,
            };
            result.map_err(|e| Error::Broker(e.to_string()))?;
            Ok(())
        }
    }

    /// `kind` (`t` or `b`), the node's id, then the message's bytes.
    fn encode(node: &[u8; 16], message: &Message) -> Vec<u8> {
        let (kind, data): (u8, &[u8]) = match message {
            Message::Text(text) => (b't', text.as_bytes()),
            Message::Binary(data) => (b'b', data),
        };
        let mut payload = Vec::with_capacity(17 + data.len());
        payload.push(kind);
        payload.extend_from_slice(node);
        payload.extend_from_slice(data);
        payload
    }

    /// The sending node and the message; `None` for a payload that is not wskit's (or text
    /// that is not UTF-8).
    pub(super) fn decode(payload: &[u8]) -> Option<([u8; 16], Message)> {
        let (&kind, rest) = payload.split_first()?;
        let node: [u8; 16] = rest.get(..16)?.try_into().ok()?;
        let data = &rest[16..];
        let message = match kind {
            b't' => Message::from(std::str::from_utf8(data).ok()?.to_owned()),
            b'b' => Message::from(data.to_vec()),
            _ => return None,
        };
        Some((node, message))
    }

    impl Channels {
        /// Channels across every node connected to the Redis server at `url`:
        /// `redis://host:port/`, `redis://:password@host/`, `redis://user:password@host/DB`,
        /// and `rediss://` (TLS, with the `redis-tls` feature; the server's certificate is
        /// checked against the system's roots, see [`redis_client`](Self::redis_client) for
        /// others). A message published on one node reaches the subscribers of every node
        /// once, its own included.
        ///
        /// If Redis restarts or the network drops, the node reconnects with backoff (0.1 s
        /// doubling to 5 s), subscribes again and logs the gap; its own subscribers are served
        /// meanwhile, and `publish` fails with [`Error::Broker`] until Redis is back.
        ///
        /// # Errors
        ///
        /// [`Error::Broker`] when the URL is invalid, Redis refuses the credentials or the
        /// certificate (at once), or refuses connections for 5 s (a Redis starting beside this
        /// node has that long to listen).
        pub async fn redis(url: &str) -> Result<Self> {
            use redis::IntoConnectionInfo as _;
            let broker = |e: redis::RedisError| Error::Broker(e.to_string());
            let info = url.into_connection_info().map_err(broker)?;
            // Without TCP_NODELAY (the redis crate's default), a PUBLISH that follows another
            // one before its acknowledgement waits for it (Nagle's algorithm).
            let tcp = info.tcp_settings().clone().set_nodelay(true);
            let client = redis::Client::open(info.set_tcp_settings(tcp)).map_err(broker)?;
            Self::redis_client(client).await
        }

        /// [`redis`](Self::redis) with a client configured by the `redis` crate itself: for
        /// what a URL cannot say, such as a private certificate authority or a client
        /// certificate (`redis::Client::build_with_tls`, with the `redis-tls` feature). Its
        /// TCP settings are the client's: `redis` turns `TCP_NODELAY` on, which a client built
        /// from a `ConnectionInfo` gets with `set_tcp_settings`.
        ///
        /// # Errors
        ///
        /// As [`redis`](Self::redis).
        pub async fn redis_client(client: redis::Client) -> Result<Self> {
            let broker = |e: redis::RedisError| Error::Broker(e.to_string());
            // Whether Redis takes this client (its certificate, its credentials) at once, on
            // one connection: the connection manager would retry a refusal for seconds, and
            // the redis crate's PSUBSCRIBE does not report the server's NOAUTH (a PING does).
            let mut probe = connect_patiently(&client).await.map_err(broker)?;
            let _: String = redis::cmd("PING")
                .query_async(&mut probe)
                .await
                .map_err(broker)?;
            drop(probe);
            let publisher = redis::aio::ConnectionManager::new(client.clone())
                .await
                .map_err(broker)?;
            // The first subscription here: its failure is the caller's.
            let pubsub = subscribe(&client).await.map_err(broker)?;
            let mut node = [0u8; 16];
            getrandom::fill(&mut node).map_err(|e| Error::Broker(e.to_string()))?;
            let subscriptions = Arc::new(AtomicU64::new(1));
            let subscribed = Arc::new(tokio::sync::Notify::new());
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let inner = Arc::new(Inner {
                broker: Some(Broker {
                    node,
                    publisher,
                    subscriptions: Arc::clone(&subscriptions),
                    subscribed: Arc::clone(&subscribed),
                }),
                _stop: Some(stop),
                ..Inner::default()
            });
            let channels = Self { inner };
            let listener = Listener {
                client,
                node,
                channels: Arc::downgrade(&channels.inner),
                subscriptions,
                subscribed,
            };
            tracing::info!("subscribed to Redis");
            tokio::spawn(async move {
                tokio::select! {
                    () = listener.run(pubsub) => {}
                    _ = stopped => {}
                }
            });
            Ok(channels)
        }

        /// How many times this node subscribed to Redis: 1 once it started, one more after
        /// each reconnection. 0 without a broker.
        pub fn subscriptions(&self) -> u64 {
            self.inner
                .broker
                .as_ref()
                .map_or(0, |b| b.subscriptions.load(Ordering::SeqCst))
        }

        /// Wait until this node subscribed at least `count` times (see
        /// [`subscriptions`](Self::subscriptions)); at once without a broker.
        pub async fn wait_subscribed(&self, count: u64) {
            let Some(broker) = &self.inner.broker else {
                return;
            };
            loop {
                let notified = broker.subscribed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if broker.subscriptions.load(Ordering::SeqCst) >= count {
                    return;
                }
                notified.await;
            }
        }
    }

    /// A connection to Redis; a Redis that refuses connections (not listening yet, as when
    /// it starts beside this node) is asked again for up to 5 s, 0.1 s doubling to 1 s apart.
    /// Any other failure (credentials, certificate) is returned at once.
    async fn connect_patiently(
        client: &redis::Client,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let patience = Duration::from_secs(5);
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match client.get_multiplexed_async_connection().await {
                Err(error) if error.is_connection_refusal() && started.elapsed() < patience => {
                    tracing::debug!(%error, retry_in = ?delay, "Redis refuses connections");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                connected => return connected,
            }
        }
    }

    /// `PSUBSCRIBE wskit:*` on a new connection.
    async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(format!("{PREFIX}*")).await?;
        Ok(pubsub)
    }

    /// What the listener task holds.
    struct Listener {
        client: redis::Client,
        node: [u8; 16],
        channels: std::sync::Weak<Inner>,
        subscriptions: Arc<AtomicU64>,
        subscribed: Arc<tokio::sync::Notify>,
    }

    impl Listener {
        /// Deliver the other nodes' messages; on a lost connection, reconnect with backoff
        /// (0.1 s doubling to 5 s; reset once a subscription held for 10 s) and subscribe
        /// again. Runs until the channels are dropped (the task is then cancelled).
        async fn run(self, mut pubsub: redis::aio::PubSub) {
            let mut delay = Duration::from_millis(100);
            loop {
                let since = tokio::time::Instant::now();
                let mut messages = pubsub.into_on_message();
                while let Some(message) =
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut messages).poll_next(cx)).await
                {
                    let Some(inner) = self.channels.upgrade() else {
                        return;
                    };
                    let Some(channel) = message.get_channel_name().strip_prefix(PREFIX) else {
                        continue;
                    };
                    match decode(message.get_payload_bytes()) {
                        // This node delivered its own message when it published it.
                        Some((from, _)) if from == self.node => {}
                        Some((_, payload)) => Channels { inner }.deliver(channel, payload),
                        None => tracing::debug!(channel, "ignored a message that is not wskit's"),
                    }
                }
                if since.elapsed() >= Duration::from_secs(10) {
                    delay = Duration::from_millis(100);
                }
                tracing::warn!(retry_in = ?delay, "lost the connection to Redis; reconnecting");
                pubsub = loop {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    match subscribe(&self.client).await {
                        Ok(pubsub) => break pubsub,
                        Err(error) => {
                            tracing::warn!(%error, retry_in = ?delay, "cannot subscribe to Redis");
                        }
                    }
                };
                self.subscriptions.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    "subscribed to Redis again; messages published while disconnected were lost"
                );
                self.subscribed.notify_waiters();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn payloads_round_trip_and_garbage_is_ignored() {
            let node = [7u8; 16];
            for message in [Message::from("héllo"), Message::from(vec![0u8, 255, 1])] {
                assert_eq!(decode(&encode(&node, &message)), Some((node, message)));
            }
            let mut bad_text = encode(&node, &Message::from(vec![0xff, 0xfe]));
            bad_text[0] = b't';
            for garbage in [&b""[..], b"t", b"x0123456789abcdefdata", &bad_text] {
                assert_eq!(decode(garbage), None, "{garbage:?}");
            }
        }
    }
}
