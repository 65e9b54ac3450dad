//! The Autobahn|Testsuite server testee: an echo server on the public wskit API, with the
//! message limits raised for the suite's 9.x performance cases (16 MiB messages, 65 536
//! fragments) and permessage-deflate on (the default).
//!
//! ```sh
//! cargo run --release --example autobahn_server -- 127.0.0.1:9001
//! ```

use wskit::{Connection, Limits};

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
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let limits = Limits::unlimited().with_max_message_size(Some(64 << 20));
    let server = wskit::serve(echo, addr).limits(limits).await?;
    println!(
        "autobahn testee listening on {}",
        server.local_addr().expect("a TCP address")
    );
    server.run_until(wskit::shutdown_signal()).await
}
