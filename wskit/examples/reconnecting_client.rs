//! Mirrors "常见问题 / 客户端 / 1. 断开后如何重连" in `seeds/001_dfc3700d69cd8878.txt` (`async for websocket in
//! websockets.connect(...): try: ... except websockets.ConnectionClosed: continue`) and the
//! reconnection study ("这里我们研究一下断线重连") in `seeds/003_f7096015a45346c8.txt`: a client that prints
//! every message it receives and, whenever the connection is lost or the server goes away, connects
//! again, waiting longer after each failed attempt (websockets' backoff: up to 5 s, then 3.1 s
//! growing to 90 s).
//!
//! ```sh
//! cargo run --example reconnecting_client           # to ws://localhost:8765
//! cargo run --example reconnecting_client -- ws://127.0.0.1:9000
//! ```
//!
//! Try it against `cargo run --example producer`: stop the server and start it again.

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:8765".into());
    let mut connections = wskit::connect(&uri).reconnecting();
    loop {
        let mut ws = connections.next().await?; // an error that retrying cannot fix, such as a 404
        println!("connected to {uri}");
        while let Some(message) = ws.next().await {
            match message {
                Ok(message) => println!("< {message}"),
                Err(error) => {
                    println!("connection lost: {error}");
                    break;
                }
            }
        }
        println!("disconnected, reconnecting");
    }
}
