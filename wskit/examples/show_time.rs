//! Mirrors `show_time.py` and its `index.html` of "3. 从前端浏览器连接 server" in
//! `seeds/001_dfc3700d69cd8878.txt` (`message = datetime.datetime.utcnow().isoformat() + "Z"`; the
//! same in `seeds/003_f7096015a45346c8.txt`): each page gets the UTC time from its own handler,
//! every 1 to 3 seconds. The page is served by the example itself: a plain `GET /` gets it, and its
//! script connects back to `ws://${location.host}/`.
//!
//! ```sh
//! cargo run --example show_time                     # then open http://localhost:5678/
//! cargo run --example show_time -- 127.0.0.1:9000
//! ```

mod common;

use std::time::Duration;

use common::{random, serve_page, utc_now};
use wskit::Connection;

async fn show_time(ws: Connection) {
    // Sending fails once the page is gone, which ends the handler.
    while ws.send(utc_now()).await.is_ok() {
        tokio::time::sleep(Duration::from_secs_f64(random() * 2.0 + 1.0)).await;
    }
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:5678".into());
    let server = wskit::serve(show_time, addr)
        .process_request(serve_page(INDEX_HTML))
        .await?;
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
