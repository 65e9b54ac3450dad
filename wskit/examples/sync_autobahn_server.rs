//! The Autobahn|Testsuite server testee on the blocking API: `autobahn_server` with threads
//! (`wskit::sync`), an echo server with the message limits raised for the suite's 9.x
//! performance cases (64 MiB messages, no fragment limit) and permessage-deflate on.
//!
//! ```sh
//! cargo run --release --features sync --example sync_autobahn_server -- 127.0.0.1:9001
//! ```

use wskit::Limits;
use wskit::sync::Connection;

fn echo(ws: Connection) -> wskit::Result<()> {
    for message in &ws {
        ws.send(message?)?;
    }
    Ok(())
}

fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let limits = Limits::unlimited().with_max_message_size(Some(64 << 20));
    let server = wskit::sync::serve(echo, addr).limits(limits).start()?;
    println!(
        "autobahn testee listening on {}",
        server.local_addr().expect("a TCP address")
    );
    server.run_until_signal()
}
