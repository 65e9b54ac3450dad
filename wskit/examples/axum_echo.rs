//! The Autobahn|Testsuite server testee through axum: an axum app whose every path upgrades, with
//! the `wskit::axum` extractor, to an echo connection with `autobahn_server`'s settings (64 MiB
//! messages, no fragment limit, permessage-deflate on). `autobahn/run.sh` runs the suite against it
//! as well, to check that the integration answers exactly as `serve` does.
//!
//! ```sh
//! cargo run --release --features axum --example axum_echo -- 127.0.0.1:9003
//! ```

use axum::Router;
use wskit::Limits;
use wskit::axum::WebSocketUpgrade;

async fn echo(mut ws: wskit::Connection) {
    while let Some(Ok(message)) = ws.next().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_owned());
    let limits = Limits::unlimited().with_max_message_size(Some(64 << 20));
    let app = Router::new().fallback(move |ws: WebSocketUpgrade| {
        let limits = limits.clone();
        async move { ws.limits(limits).on_upgrade(echo) }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("axum testee listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(wskit::shutdown_signal())
        .await
}
