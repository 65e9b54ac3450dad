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
//! ```

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;

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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:6789".into());
    let server = wskit::serve(counter, addr)
        .process_request(common::serve_page(INDEX_HTML))
        .await?;
    server.run_until(wskit::shutdown_signal()).await
}

/// The page, shared with the `axum_app` example; it connects to `/ws` (any path gets the
/// WebSocket here).
const INDEX_HTML: &str = include_str!("common/counter.html");
