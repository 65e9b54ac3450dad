//! Mirrors "自定义协议" in `seeds/002_721f8c86e97971d7.txt` (`class
//! CustomProtocol(websockets.WebSocketServerProtocol): async def process_request(self, path,
//! request_headers): if path != "/custom": return (404, [], b"Not Found")`) and "自定义 WebSocket 握手"
//! in `seeds/000_905a952b57538e4e.txt`: the handshake request is checked before the connection
//! opens. Paths other than `/custom` get 404; clients without a token in the query string
//! (`?token=...`) or HTTP Basic credentials get 401. The handler then greets the user that the
//! handshake authenticated, and echoes.
//!
//! ```sh
//! cargo run --example custom_handshake              # ws://localhost:8765/custom
//! ```
//!
//! Connect to `ws://localhost:8765/custom?token=s3cr3t` or
//! `ws://alice:wonderland@localhost:8765/custom` (demo credentials: keep real ones elsewhere).

use wskit::proto::handshake::base64_encode;
use wskit::{Connection, Request, Response};

const TOKENS: &[(&str, &str)] = &[("s3cr3t", "token holder")];
const USERS: &[(&str, &str)] = &[("alice", "wonderland")];

/// Who sent `request`: the user of a valid token or of valid Basic credentials.
fn authenticate(request: &Request) -> Option<String> {
    let query = request.path.split_once('?').map_or("", |(_, query)| query);
    let token = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    if let Some(&(_, user)) = TOKENS.iter().find(|(t, _)| Some(*t) == token) {
        return Some(user.into());
    }
    let authorization = request.headers.get("Authorization")?;
    USERS
        .iter()
        .find(|(user, password)| {
            authorization
                == format!(
                    "Basic {}",
                    base64_encode(format!("{user}:{password}").as_bytes())
                )
        })
        .map(|(user, _)| (*user).into())
}

fn process_request(request: &Request) -> Option<Response> {
    if request.path.split('?').next() != Some("/custom") {
        return Some(Response::new(404, "Not Found\n"));
    }
    if authenticate(request).is_none() {
        let mut response = Response::new(401, "Missing or invalid credentials.\n");
        response
            .headers
            .append("WWW-Authenticate", "Basic realm=\"wskit\"");
        return Some(response);
    }
    None
}

async fn handler(mut ws: Connection) -> wskit::Result<()> {
    let user = ws.request().and_then(authenticate).unwrap_or_default();
    ws.send(format!("Hello {user}!")).await?;
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
    let server = wskit::serve(handler, addr)
        .process_request(|_, request| process_request(request))
        .await?;
    server.run_until(wskit::shutdown_signal()).await
}
