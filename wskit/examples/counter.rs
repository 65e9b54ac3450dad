//! Mirrors `counter.py` and its page of "5. 管理应用状态" in `seeds/001_dfc3700d69cd8878.txt` (`USERS =
//! set()`, `VALUE = 0`; the same with `STATE` in `seeds/003_f7096015a45346c8.txt`): a shared
//! counter with plus and minus buttons. Every page shows the same value and how many users are
//! online; a click on any page changes the value for all of them.
//!
//! Messages are JSON, as in the seed: the server sends `{"type": "value", "value": N}` and
//! `{"type": "users", "count": N}`, pages send `{"action": "plus"}` or `{"action": "minus"}`. The
//! page is served by the example itself: open it in several tabs.
//!
//! ```sh
//! cargo run --example counter                       # then open http://localhost:6789/
//! cargo run --example counter -- 127.0.0.1:9000
//! cargo run --example counter -- 127.0.0.1:9001 --redis redis://127.0.0.1:6379/
//! ```
//!
//! With `--redis URL`, several counter processes share one counter through Redis: the value
//! changes atomically in Redis (with a sequence number, so that pages can drop events that
//! arrive late), each node keeps its number of users in a key that expires 10 s after the node
//! stops refreshing it, and the events reach every node's pages through `wskit::Channels`.
//! `--name NAME` names the node in an `X-Wskit-Node` header on every answer; `GET /healthz`
//! answers 200 (for a load balancer or a Kubernetes probe). `examples/cluster/run.sh` runs
//! several nodes behind nginx.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wskit::Connection;

/// The connected users and the counter's value. Events are broadcast while the lock is held,
/// so that every page sees the changes in the same order.
struct State {
    users: BTreeMap<u64, Connection>,
    value: i64,
}

static STATE: Mutex<State> = Mutex::new(State {
    users: BTreeMap::new(),
    value: 0,
});

fn users_event(state: &State) -> String {
    json!({"type": "users", "count": state.users.len()}).to_string()
}

fn value_event(state: &State) -> String {
    json!({"type": "value", "value": state.value}).to_string()
}

fn register(ws: &Connection) {
    let mut state = STATE.lock().unwrap();
    state.users.insert(ws.id(), ws.clone());
    wskit::broadcast(state.users.values(), users_event(&state));
    wskit::broadcast([ws], value_event(&state));
}

fn unregister(ws: &Connection) {
    let mut state = STATE.lock().unwrap();
    state.users.remove(&ws.id());
    wskit::broadcast(state.users.values(), users_event(&state));
}

async fn counter(mut ws: Connection) {
    register(&ws);
    while let Some(Ok(message)) = ws.next().await {
        let text = message.as_text().unwrap_or_default();
        let data: Value = serde_json::from_str(text).unwrap_or_default();
        let mut state = STATE.lock().unwrap();
        match data["action"].as_str() {
            Some("minus") => state.value -= 1,
            Some("plus") => state.value += 1,
            _ => {
                eprintln!("unsupported event: {message}");
                continue;
            }
        }
        wskit::broadcast(state.users.values(), value_event(&state));
    }
    unregister(&ws);
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let (mut addr, mut redis_url, mut name) = ("localhost:6789".to_owned(), None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => redis_url = args.next(),
            "--name" => name = args.next(),
            _ => addr = arg,
        }
    }
    // `/healthz` for load balancers and probes; every answer names the node that gave it.
    let page = common::serve_page(INDEX_HTML);
    let requests = move |handshake: &mut wskit::server::Handshake<'_>, request: &wskit::Request| {
        if request.path == "/healthz" {
            return Some(wskit::Response::new(200, "OK\n"));
        }
        page(handshake, request)
    };
    let node = name.unwrap_or_else(|| "counter".to_owned());
    let responses = move |_: &wskit::Request, response: &mut wskit::Response| {
        response.headers.insert("X-Wskit-Node", node.as_str());
    };
    let Some(url) = redis_url else {
        let server = wskit::serve(counter, addr)
            .process_request(requests)
            .process_response(responses)
            .await?;
        return server.run_until(wskit::shutdown_signal()).await;
    };
    let shared = Arc::new(shared::Shared::connect(&url).await?);
    tokio::spawn(shared::refresh(Arc::clone(&shared)));
    let handler_state = Arc::clone(&shared);
    let server = wskit::serve(
        move |ws| shared::counter(ws, Arc::clone(&handler_state)),
        addr,
    )
    .process_request(requests)
    .process_response(responses)
    .await?;
    let result = server.run_until(wskit::shutdown_signal()).await;
    shared.leave().await;
    result
}

/// The counter's state in Redis, shared by every node.
mod shared {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::{Value, json};
    use wskit::{Channels, Connection};

    const VALUE: &str = "wskit:counter:value";
    const VALUE_SEQ: &str = "wskit:counter:value-seq";
    const USERS_SEQ: &str = "wskit:counter:users-seq";
    const PRESENCE: &str = "wskit:counter:users:";
    /// How long a node's user count lives without a refresh.
    const PRESENCE_TTL_SECS: u64 = 10;

    /// Change the value and count the change, atomically.
    const CHANGE: &str = "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) \
        return {v, redis.call('INCR', KEYS[2])}";
    /// Set this node's user count, then sum every node's, and count the change: atomically.
    const PRESENCE_SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) \
        local total = 0 \
        for _, key in ipairs(redis.call('KEYS', ARGV[3])) do \
          total = total + tonumber(redis.call('GET', key) or '0') \
        end \
        return {total, redis.call('INCR', KEYS[2])}";

    pub(super) struct Shared {
        channels: Channels,
        redis: redis::aio::ConnectionManager,
        /// This node's key of presence.
        presence: String,
        users: Mutex<BTreeMap<u64, Connection>>,
    }

    fn broker(error: redis::RedisError) -> wskit::Error {
        wskit::Error::Broker(error.to_string())
    }

    impl Shared {
        pub(super) async fn connect(url: &str) -> wskit::Result<Self> {
            let channels = Channels::redis(url).await?;
            let client = redis::Client::open(url).map_err(broker)?;
            let redis = redis::aio::ConnectionManager::new(client)
                .await
                .map_err(broker)?;
            let mut node = [0u8; 8];
            getrandom::fill(&mut node).map_err(|e| wskit::Error::Broker(e.to_string()))?;
            let node: String = node.iter().map(|b| format!("{b:02x}")).collect();
            Ok(Self {
                channels,
                redis,
                presence: format!("{PRESENCE}{node}"),
                users: Mutex::default(),
            })
        }

        /// Publish this node's user count and everyone's total.
        async fn publish_users(&self) -> wskit::Result<()> {
            let count = self.users.lock().unwrap().len();
            let (total, seq): (i64, i64) = redis::cmd("EVAL")
                .arg(PRESENCE_SCRIPT)
                .arg(2)
                .arg(&self.presence)
                .arg(USERS_SEQ)
                .arg(count)
                .arg(PRESENCE_TTL_SECS)
                .arg(format!("{PRESENCE}*"))
                .query_async(&mut self.redis.clone())
                .await
                .map_err(broker)?;
            let event = json!({"type": "users", "count": total, "seq": seq});
            self.channels.publish("counter", event.to_string()).await
        }

        /// The value and its sequence number now.
        async fn value(&self) -> wskit::Result<(i64, i64)> {
            let (value, seq): (Option<i64>, Option<i64>) = redis::cmd("MGET")
                .arg(VALUE)
                .arg(VALUE_SEQ)
                .query_async(&mut self.redis.clone())
                .await
                .map_err(broker)?;
            Ok((value.unwrap_or(0), seq.unwrap_or(0)))
        }

        /// Change the value by `delta` and tell every node's pages.
        async fn change(&self, delta: i64) -> wskit::Result<()> {
            let (value, seq): (i64, i64) = redis::cmd("EVAL")
                .arg(CHANGE)
                .arg(2)
                .arg(VALUE)
                .arg(VALUE_SEQ)
                .arg(delta)
                .query_async(&mut self.redis.clone())
                .await
                .map_err(broker)?;
            let event = json!({"type": "value", "value": value, "seq": seq});
            self.channels.publish("counter", event.to_string()).await
        }

        /// This node stops: its users no longer count.
        pub(super) async fn leave(&self) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(&self.presence)
                .query_async(&mut self.redis.clone())
                .await;
        }
    }

    /// Refresh this node's presence before it expires, and publish the total when it changed
    /// (a node that died without leaving drops out when its key expires).
    pub(super) async fn refresh(shared: Arc<Shared>) {
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if let Err(error) = shared.publish_users().await {
                eprintln!("cannot refresh the presence: {error}");
            }
        }
    }

    /// One page's WebSocket, on the shared state.
    pub(super) async fn counter(ws: Connection, shared: Arc<Shared>) -> wskit::Result<()> {
        shared.users.lock().unwrap().insert(ws.id(), ws.clone());
        shared.channels.subscribe(&ws, "counter");
        let (value, seq) = shared.value().await?;
        ws.send(json!({"type": "value", "value": value, "seq": seq}).to_string())
            .await?;
        shared.publish_users().await?;
        while let Some(Ok(message)) = ws.clone().next().await {
            let data: Value =
                serde_json::from_str(message.as_text().unwrap_or_default()).unwrap_or_default();
            let delta = match data["action"].as_str() {
                Some("minus") => -1,
                Some("plus") => 1,
                _ => {
                    eprintln!("unsupported event: {message}");
                    continue;
                }
            };
            shared.change(delta).await?;
        }
        shared.users.lock().unwrap().remove(&ws.id());
        shared.publish_users().await
    }
}

/// The page, shared with the `axum_app` example; it connects to `/ws` (any path gets the
/// WebSocket here).
const INDEX_HTML: &str = include_str!("common/counter.html");
