//! The seeds' Flask pattern (seed 000, "集成 Flask 框架": one web application serves the pages,
//! its routes and the WebSocket) with axum and the `wskit::axum` extractor, on the counter demo:
//! the page at `/`, the counter's state as JSON at `GET /api/state` (`{"value": N, "users": N}`,
//! the numbers the page shows), and the WebSocket at `/ws`, all sharing one state. The
//! WebSocket speaks the `counter` example's messages.
//!
//! ```sh
//! cargo run --features axum --example axum_app                  # http://localhost:6789/
//! cargo run --features axum --example axum_app -- 127.0.0.1:9000
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use wskit::Connection;
use wskit::axum::WebSocketUpgrade;

/// The connected users and the counter's value. Events are broadcast while the lock is held,
/// so that every page sees the changes in the same order.
#[derive(Default)]
struct Counter {
    users: BTreeMap<u64, Connection>,
    value: i64,
}

type Shared = Arc<Mutex<Counter>>;

fn users_event(state: &Counter) -> String {
    json!({"type": "users", "count": state.users.len()}).to_string()
}

fn value_event(state: &Counter) -> String {
    json!({"type": "value", "value": state.value}).to_string()
}

/// One page's WebSocket: the `counter` example's handler, on the app's state.
async fn counter(ws: Connection, shared: Shared) {
    {
        let mut state = shared.lock().unwrap();
        state.users.insert(ws.id(), ws.clone());
        wskit::broadcast(state.users.values(), users_event(&state));
        wskit::broadcast([&ws], value_event(&state));
    }
    while let Ok(message) = ws.recv().await {
        let data: Value =
            serde_json::from_str(message.as_text().unwrap_or_default()).unwrap_or_default();
        let mut state = shared.lock().unwrap();
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
    let mut state = shared.lock().unwrap();
    state.users.remove(&ws.id());
    wskit::broadcast(state.users.values(), users_event(&state));
}

/// `GET /api/state`: what the pages show.
async fn api_state(State(shared): State<Shared>) -> Json<Value> {
    let state = shared.lock().unwrap();
    Json(json!({"value": state.value, "users": state.users.len()}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:6789".into());
    let app = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/api/state", get(api_state))
        .route(
            "/ws",
            get(
                |State(shared): State<Shared>, ws: WebSocketUpgrade| async move {
                    ws.on_upgrade(move |ws| counter(ws, shared))
                },
            ),
        )
        .with_state(Shared::default());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(wskit::shutdown_signal())
        .await
}

/// The counter's page, shared with the `counter` example; it connects to `/ws` (`wss:` when it
/// was loaded over https).
const INDEX_HTML: &str = include_str!("common/counter.html");
