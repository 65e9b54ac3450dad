//! Mirrors `show_time_2.py` of "4. 广播消息" in `seeds/001_dfc3700d69cd8878.txt` (one `show_time()`
//! loop that calls `websockets.broadcast(CONNECTIONS, message)`): a single timer task sends the UTC
//! time to every connected page at once, every 1 to 3 seconds. The set of connections is the
//! server's own (`server.connections()`), so the handler only waits for its page to go away.
//!
//! ```sh
//! cargo run --example show_time_broadcast           # then open http://localhost:5678/ in tabs
//! cargo run --example show_time_broadcast -- 127.0.0.1:9000
//! ```

mod common;

use std::time::Duration;

use common::{random, serve_page, utc_now};
use wskit::{Connection, Server};

async fn register(ws: Connection) {
    ws.wait_closed().await;
}

async fn show_time(server: Server) {
    loop {
        wskit::broadcast(&server.connections(), utc_now());
        tokio::time::sleep(Duration::from_secs_f64(random() * 2.0 + 1.0)).await;
    }
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:5678".into());
    let server = wskit::serve(register, addr)
        .process_request(serve_page(INDEX_HTML))
        .await?;
    tokio::spawn(show_time(server.clone()));
    server.run_until(wskit::shutdown_signal()).await
}

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html>
    <head>
        <title>WebSocket demo</title>
    </head>
    <body>
        <script>
            var ws = new WebSocket(`ws://${location.host}/`),
                messages = document.createElement('ul');
            ws.onmessage = function (event) {
                var messages = document.getElementsByTagName('ul')[0],
                    message = document.createElement('li'),
                    content = document.createTextNode(event.data);
                message.appendChild(content);
                messages.appendChild(message);
            };
            document.body.appendChild(messages);
        </script>
    </body>
</html>
"#;
