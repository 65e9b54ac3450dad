//! The chat demo with rooms, behind HTTP Basic authentication: Python websockets' `route` and
//! `basic_auth` in wskit. `/rooms/{name}` is a room's WebSocket; `/` is the page, in the same
//! realm (a browser asks for the credentials when it loads the page, then sends them with the
//! WebSocket handshake, which it never prompts for). Everyone in a room gets each line as
//! `USER: TEXT`, and a notice when someone joins or leaves; other rooms hear nothing of it.
//!
//! ```sh
//! cargo run --example chat_rooms                  # then open http://localhost:8766/
//! cargo run --example chat_rooms -- 127.0.0.1:9000
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wskit::{BasicAuth, Connection, ConnectionSet, Router};

/// The demo's users and passwords, printed at start.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// The rooms, by name: created when someone first joins.
#[derive(Default)]
struct Rooms(Mutex<HashMap<String, ConnectionSet>>);

impl Rooms {
    fn room(&self, name: &str) -> ConnectionSet {
        let mut rooms = self.0.lock().unwrap();
        rooms.retain(|_, members| !members.is_empty());
        rooms.entry(name.to_owned()).or_default().clone()
    }
}

/// One line of text: newlines would split it.
fn one_line(text: &str) -> String {
    text.trim().replace(['\r', '\n'], " ")
}

async fn chat(ws: Connection, rooms: Arc<Rooms>) -> wskit::Result<()> {
    let room_name = ws.params().get("name").unwrap_or_default().to_owned();
    let user = ws.username().unwrap_or_default().to_owned();
    let room = rooms.room(&room_name);
    room.insert(&ws);
    room.broadcast(format!("*** {user} joined {room_name}"));
    while let Some(Ok(message)) = ws.clone().next().await {
        if let Ok(text) = message.as_text() {
            room.broadcast(format!("{user}: {}", one_line(text)));
        }
    }
    room.remove(&ws);
    room.broadcast(format!("*** {user} left {room_name}"));
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8766".into());
    let rooms = Arc::new(Rooms::default());
    let router = Router::new().route("/rooms/{name}", move |ws| chat(ws, Arc::clone(&rooms)));
    let server = wskit::route(router, addr)
        .basic_auth(BasicAuth::new("chat rooms").credentials(USERS))
        .max_size(Some(4096)) // a line of chat, not a file
        .process_request(common::serve_page(INDEX_HTML))
        .await?;
    let users: Vec<String> = USERS.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    println!("demo credentials: {}", users.join(", "));
    for addr in server.local_addrs() {
        println!("listening on http://{addr}/");
    }
    server.run_until(wskit::shutdown_signal()).await
}

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>WebSocket chat rooms</title>
    <style>
      body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
      #log { list-style: none; padding: 0; height: 60vh; overflow-y: auto; border: thin solid; }
      #log li { padding: 0.2em 0.5em; }
      #log li.notice { color: gray; font-style: italic; }
      form:not([hidden]) { display: flex; gap: 0.5em; margin: 0.5em 0; }
      form input[type=text] { flex: 1; }
    </style>
  </head>
  <body>
    <form id="join">
      <input type="text" id="room" placeholder="Room" value="lobby" required>
      <input type="submit" value="Join">
    </form>
    <ul id="log"></ul>
    <form id="say" hidden>
      <input type="text" id="message" placeholder="Message" autocomplete="off">
      <input type="submit" value="Send">
    </form>
    <script>
      const log = document.getElementById('log');
      function show(line) {
        const item = document.createElement('li');
        item.textContent = line;
        if (line.startsWith('*** ')) item.className = 'notice';
        log.appendChild(item);
        log.scrollTop = log.scrollHeight;
      }
      document.getElementById('join').addEventListener('submit', (event) => {
        event.preventDefault();
        const room = encodeURIComponent(document.getElementById('room').value);
        const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
        // The browser sends the page's credentials with the handshake.
        const websocket = new WebSocket(`${scheme}://${location.host}/rooms/${room}`);
        websocket.onopen = () => {
          document.getElementById('join').hidden = true;
          document.getElementById('say').hidden = false;
          document.getElementById('message').focus();
        };
        websocket.onmessage = ({ data }) => show(data);
        websocket.onclose = () => show('*** disconnected');
        document.getElementById('say').addEventListener('submit', (event) => {
          event.preventDefault();
          const message = document.getElementById('message');
          if (message.value) websocket.send(message.value);
          message.value = '';
        });
      });
    </script>
  </body>
</html>
"#;
