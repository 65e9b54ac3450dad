//! The seeds' Flask pattern (seed 000, "集成 Flask 框架": one web application serves the pages,
//! its routes and the WebSocket) with axum and the `wskit::axum` extractor, on the counter demo:
//! the page at `/`, the counter's state as JSON at `GET /api/state` (`{"value": N, "users": N}`,
//! the numbers the page shows), and the WebSocket at `/ws`, all sharing one state. The
//! WebSocket speaks the `counter` example's messages. `GET /api/connections` lists the open
//! WebSockets with the HTTP request that opened each (version, method, `:protocol`, peer).
//!
//! With `--tls`, the app serves HTTPS on a certificate it makes for localhost at startup, with
//! ALPN `h2` and `http/1.1`: a browser loads the page over HTTP/2 and opens its `wss:`
//! WebSocket on the same connection (RFC 8441's extended CONNECT). On Ctrl-C or SIGTERM, the
//! WebSockets close with 1001 and every connection gets GOAWAY (HTTP/2) or is closed when idle.
//!
//! ```sh
//! cargo run --features axum --example axum_app                  # http://localhost:6789/
//! cargo run --features axum --example axum_app -- 127.0.0.1:9000
//! cargo run --features axum --example axum_app -- localhost:6789 --tls   # https://
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::response::Html;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use wskit::axum::WebSocketUpgrade;
use wskit::{CloseCode, Connection, PeerAddr};

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

/// `GET /api/connections`: the open WebSockets, and the request that opened each.
async fn api_connections(State(shared): State<Shared>) -> Json<Value> {
    let state = shared.lock().unwrap();
    let connections = state.users.values().map(|ws| {
        let request = ws.request().expect("a server connection has its request");
        json!({
            "http": request.version.as_str(),
            "method": request.method,
            "protocol": request.protocol,
            "peer": ws.remote_addr().map(ToString::to_string),
        })
    });
    Json(connections.collect())
}

/// `/ws`: GET in HTTP/1.1, CONNECT in HTTP/2, hence `any`.
async fn websocket(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.remote_addr(PeerAddr::Tcp(peer))
        .on_upgrade(move |ws| counter(ws, shared))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut tls) = ("localhost:6789".to_owned(), false);
    for arg in args.by_ref() {
        match arg.as_str() {
            "--tls" => tls = true,
            _ => addr = arg,
        }
    }
    let shared = Shared::default();
    let app = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/api/state", get(api_state))
        .route("/api/connections", get(api_connections))
        .route("/ws", any(websocket))
        .with_state(Arc::clone(&shared));
    let listener = TcpListener::bind(&addr).await?;
    if tls {
        println!("listening on https://{}/", listener.local_addr()?);
        return tls::serve(listener, app, shared).await;
    }
    println!("listening on http://{}/", listener.local_addr()?);
    let closing = Arc::clone(&shared);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        wskit::shutdown_signal().await;
        going_away(&closing);
    })
    .await?;
    gone(&shared).await;
    Ok(())
}

/// Close every page's WebSocket with 1001, without waiting for the close handshakes (the
/// connections carrying them must go on being served meanwhile).
fn going_away(shared: &Shared) {
    for ws in shared.lock().unwrap().users.values() {
        let ws = ws.clone();
        tokio::spawn(async move {
            ws.close(CloseCode::GOING_AWAY, "server shutting down")
                .await
        });
    }
}

/// Wait, at most 10 s, until every page's WebSocket has closed.
async fn gone(shared: &Shared) {
    for _ in 0..1000 {
        if shared.lock().unwrap().users.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// HTTPS with HTTP/2 and HTTP/1.1 on one port: rustls with ALPN, hyper's automatic protocol
/// choice, extended CONNECT on for the WebSockets over HTTP/2, and a graceful shutdown.
mod tls {
    use super::*;
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
    use tower_service::Service;

    /// A self-signed certificate for localhost, made at startup, as a rustls server config
    /// that offers h2 and http/1.1.
    fn config() -> std::io::Result<rustls::ServerConfig> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    pub(super) async fn serve(
        listener: TcpListener,
        app: Router,
        shared: Shared,
    ) -> std::io::Result<()> {
        let acceptor = TlsAcceptor::from(Arc::new(config()?));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL, which browsers wait for; and at most
        // 100 streams (WebSockets and requests) open at once on a connection.
        builder
            .http2()
            .enable_connect_protocol()
            .max_concurrent_streams(100);
        let graceful = GracefulShutdown::new();
        let signal = wskit::shutdown_signal();
        tokio::pin!(signal);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        eprintln!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let (acceptor, builder, app) = (acceptor.clone(), builder.clone(), app.clone());
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                // What `into_make_service_with_connect_info` gives the handlers on plain HTTP.
                let service =
                    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        app.clone().call(request)
                    });
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let _ = watcher.watch(connection.into_owned()).await;
            });
        }
        going_away(&shared);
        // GOAWAY on HTTP/2 connections (their WebSocket streams finish their close
        // handshakes), idle HTTP/1.1 connections closed; bounded, as a process manager would.
        let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
        gone(&shared).await;
        Ok(())
    }
}

/// The counter's page, shared with the `counter` example; it connects to `/ws` (`wss:` when it
/// was loaded over https).
const INDEX_HTML: &str = include_str!("common/counter.html");
