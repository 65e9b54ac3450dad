//! Mirrors "python websockets 网络聊天室V1" in `seeds/003_f7096015a45346c8.txt` (a chat room whose
//! history is saved in `chat.log`) and "实时聊天应用" in `seeds/002_721f8c86e97971d7.txt` (`async def
//! chat_handler(websocket, path)`, which sends every message to every connected client).
//!
//! Each client sends its name first, then messages. Everyone in the room gets each message as
//! `NAME: TEXT`, and a notice when someone joins or leaves. Everything said is appended to a log
//! file, one line each; a newcomer first gets the last 100 lines of it in one message (lines
//! separated by `\n`), so the history survives a restart. The page, with a name field and a message
//! box, is served by the example itself.
//!
//! ```sh
//! cargo run --example chat                          # then open http://localhost:8765/
//! cargo run --example chat -- 127.0.0.1:9000 /tmp/chat.log    # log: ./chat.log by default
//! ```

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wskit::Connection;

/// How many lines of history a newcomer gets.
const HISTORY: usize = 100;

struct Room {
    log: PathBuf,
    members: Mutex<BTreeMap<u64, Connection>>,
}

impl Room {
    /// Give `ws` the history, then let it in: both under the lock, so that no line is missed
    /// or repeated between the two.
    fn join(&self, ws: &Connection, name: &str) {
        {
            let mut members = self.members.lock().unwrap();
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let history = lines[lines.len().saturating_sub(HISTORY)..].join("\n");
            if !history.is_empty() {
                wskit::broadcast([ws], history); // queued at once: nothing else is queued yet
            }
            members.insert(ws.id(), ws.clone());
        }
        self.say(&format!("*** {name} joined"));
    }

    fn leave(&self, ws: &Connection, name: &str) {
        self.members.lock().unwrap().remove(&ws.id());
        self.say(&format!("*** {name} left"));
    }

    /// Append `line` to the log and send it to everyone in the room (under the lock, so that
    /// everyone gets the lines in the order of the log).
    fn say(&self, line: &str) {
        let members = self.members.lock().unwrap();
        let appended = OpenOptions::new().create(true).append(true).open(&self.log);
        if let Err(error) = appended.and_then(|mut log| writeln!(log, "{line}")) {
            eprintln!("cannot write to {}: {error}", self.log.display());
        }
        wskit::broadcast(members.values(), line);
    }
}

/// One line of text: newlines would split a message in the log.
fn one_line(text: &str) -> String {
    text.trim().replace(['\r', '\n'], " ")
}

async fn chat(mut ws: Connection, room: Arc<Room>) -> wskit::Result<()> {
    let name = one_line(ws.recv().await?.as_text()?);
    room.join(&ws, &name);
    while let Some(Ok(message)) = ws.next().await {
        if let Ok(text) = message.as_text() {
            room.say(&format!("{name}: {}", one_line(text)));
        }
    }
    room.leave(&ws, &name);
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "localhost:8765".into());
    let log = args.next().unwrap_or_else(|| "chat.log".into());
    let room = Arc::new(Room {
        log: log.into(),
        members: Mutex::new(BTreeMap::new()),
    });
    let server = wskit::serve(move |ws| chat(ws, Arc::clone(&room)), addr)
        .max_size(Some(4096)) // a line of chat, not a file
        .process_request(common::serve_page(INDEX_HTML))
        .await?;
    server.run_until(wskit::shutdown_signal()).await
}

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>WebSocket chat</title>
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
      <input type="text" id="name" placeholder="Your name" autofocus required>
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
        const name = document.getElementById('name').value;
        const websocket = new WebSocket(`ws://${location.host}/`);
        websocket.onopen = () => {
          websocket.send(name);
          document.getElementById('join').hidden = true;
          document.getElementById('say').hidden = false;
          document.getElementById('message').focus();
        };
        // One message may hold several lines: the history.
        websocket.onmessage = ({ data }) => data.split('\n').forEach(show);
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
