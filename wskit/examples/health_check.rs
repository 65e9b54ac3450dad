//! Mirrors the health check of `seeds/003_f7096015a45346c8.txt` (`async def health_check(path,
//! request_headers): if path == "/health/": return http.HTTPStatus.OK, [], b"OK\n"`, given as
//! `process_request`): an echo server that answers `GET /healthz` with `200 OK` and `OK\n` instead
//! of the WebSocket handshake, for load balancers and probes.
//!
//! ```sh
//! cargo run --example health_check                  # ws://localhost:8765
//! curl -i http://localhost:8765/healthz
//! ```

use wskit::{Connection, Response};

async fn echo(mut ws: Connection) -> wskit::Result<()> {
    while let Some(message) = ws.next().await {
        ws.send(message?).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(echo, addr)
        .process_request(|_, request| {
            (request.path == "/healthz").then(|| Response::new(200, "OK\n"))
        })
        .await?;
    server.run_until(wskit::shutdown_signal()).await
}
