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
//! cargo run --example chat -- 127.0.0.1:9001 --redis redis://127.0.0.1:6379/
//! ```
//!
//! With `--redis URL`, several chat processes share one room through Redis: every line goes
//! into a Redis Stream (`wskit:chat:history`, trimmed to about 1,000 lines) instead of the log
//! file, and each node reads the stream to pass the lines on to its own members. The stream is
//! the history and the fan-out at once: the members of every node get the lines in the
//! stream's order (a member too slow to keep up skips lines, as with `broadcast`), a newcomer
//! gets the 100 lines before the first one sent to it live (no gap, no repeat), and a node
//! that lost its connection to Redis for a while passes on what was added meanwhile when it is
//! back (Pub/Sub would have dropped it).

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
    let mut positional = Vec::new();
    let mut redis_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => redis_url = args.next(),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let addr = positional.next().unwrap_or_else(|| "localhost:8765".into());
    let server = if let Some(url) = redis_url {
        let room = shared::Room::connect(&url).await?;
        wskit::serve(move |ws| shared::chat(ws, Arc::clone(&room)), addr)
            .max_size(Some(4096))
            .process_request(common::serve_page(INDEX_HTML))
            .await?
    } else {
        let log = positional.next().unwrap_or_else(|| "chat.log".into());
        let room = Arc::new(Room {
            log: log.into(),
            members: Mutex::new(BTreeMap::new()),
        });
        wskit::serve(move |ws| chat(ws, Arc::clone(&room)), addr)
            .max_size(Some(4096)) // a line of chat, not a file
            .process_request(common::serve_page(INDEX_HTML))
            .await?
    };
    server.run_until(wskit::shutdown_signal()).await
}

/// The room in Redis, shared by every node: a Stream is both its history and its fan-out.
mod shared {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use wskit::Connection;

    use super::{HISTORY, one_line};

    const STREAM: &str = "wskit:chat:history";
    /// About how many lines the stream keeps (`XADD ... MAXLEN ~`: Redis trims whole nodes).
    const KEEP: usize = 1000;
    /// How long one `XREAD` waits for new lines before it asks again.
    const BLOCK: Duration = Duration::from_secs(5);

    /// Stream entries: their ids and fields, as bytes (an entry that another program wrote
    /// need not be UTF-8: it is shown with replacement characters rather than stopping the
    /// room).
    type Entries = Vec<(String, Vec<Vec<u8>>)>;

    /// How long a command may wait for Redis (the redis crate's default is 0.5 s, short for a
    /// loaded machine; a command that timed out may still have run).
    const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

    fn broker(error: redis::RedisError) -> wskit::Error {
        wskit::Error::Broker(error.to_string())
    }

    /// The line of a stream entry (its fields are `line`, then the text).
    fn line(fields: &[Vec<u8>]) -> String {
        fields.get(1).map_or_else(String::new, |text| {
            String::from_utf8_lossy(text).into_owned()
        })
    }

    struct Members {
        /// The id of the last entry passed on to this node's members.
        last: String,
        connections: BTreeMap<u64, Connection>,
    }

    pub(super) struct Room {
        redis: redis::aio::ConnectionManager,
        /// An async lock: joining reads the history from Redis while holding it.
        members: tokio::sync::Mutex<Members>,
    }

    impl Room {
        /// Connect to Redis and start passing the stream's new lines on to this node's members.
        pub(super) async fn connect(url: &str) -> wskit::Result<Arc<Self>> {
            let client = redis::Client::open(url).map_err(broker)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            let mut redis = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(broker)?;
            // Live lines are the ones after the stream's end now.
            let newest: Entries = redis::cmd("XREVRANGE")
                .arg(STREAM)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut redis)
                .await
                .map_err(broker)?;
            let last = newest
                .first()
                .map_or_else(|| "0-0".to_owned(), |e| e.0.clone());
            let room = Arc::new(Self {
                redis,
                members: tokio::sync::Mutex::new(Members {
                    last,
                    connections: BTreeMap::new(),
                }),
            });
            tokio::spawn(read(Arc::downgrade(&room), client));
            Ok(room)
        }

        /// The history up to the last line passed on, then `ws` is a member: both under the
        /// lock that passing lines on takes, so that `ws` misses no line and gets none twice.
        /// (Bounded: the lock holds up the room's other members meanwhile.)
        async fn join(&self, ws: &Connection) -> wskit::Result<()> {
            let mut members = self.members.lock().await;
            let mut command = redis::cmd("XREVRANGE");
            command
                .arg(STREAM)
                .arg(&members.last)
                .arg("-")
                .arg("COUNT")
                .arg(HISTORY);
            let mut redis = self.redis.clone();
            let history = command.query_async(&mut redis);
            let entries: Entries = tokio::time::timeout(RESPONSE_TIMEOUT, history)
                .await
                .map_err(|_| wskit::Error::Broker("Redis did not answer in time".into()))?
                .map_err(broker)?;
            let lines: Vec<String> = entries.iter().rev().map(|(_, f)| line(f)).collect();
            if !lines.is_empty() {
                wskit::broadcast([ws], lines.join("\n"));
            }
            members.connections.insert(ws.id(), ws.clone());
            Ok(())
        }

        /// Add `line` to the stream; every node passes it on.
        async fn say(&self, line: &str) -> wskit::Result<()> {
            let _id: String = redis::cmd("XADD")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(KEEP)
                .arg("*")
                .arg("line")
                .arg(line)
                .query_async(&mut self.redis.clone())
                .await
                .map_err(broker)?;
            Ok(())
        }
    }

    /// Pass the stream's new lines on to this node's members, in the stream's order, until the
    /// room is gone. A lost connection to Redis is retried with backoff; the lines added in the
    /// meantime are passed on when it is back (the read resumes after the last one passed on).
    async fn read(room: std::sync::Weak<Room>, client: redis::Client) {
        // A connection of its own: a blocked XREAD would hold up the other commands.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK * 2));
        let mut backoff = Duration::from_millis(100);
        'connect: loop {
            let connected = async {
                let mut connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                // Named, for CLIENT LIST (and for the test that cuts it off).
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg("wskit-chat-reader")
                    .query_async::<()>(&mut connection)
                    .await?;
                redis::RedisResult::Ok(connection)
            };
            let mut connection = match connected.await {
                Ok(connection) => connection,
                Err(error) => {
                    eprintln!("cannot read the chat's stream: {error}; again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                let Some(alive) = room.upgrade() else { return };
                let last = alive.members.lock().await.last.clone();
                drop(alive);
                let read: redis::RedisResult<Option<Vec<(String, Entries)>>> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(HISTORY)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(STREAM)
                    .arg(&last)
                    .query_async(&mut connection)
                    .await;
                let streams = match read {
                    Ok(streams) => streams.unwrap_or_default(),
                    Err(error) => {
                        eprintln!("lost the chat's stream: {error}; again in {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue 'connect;
                    }
                };
                backoff = Duration::from_millis(100);
                let Some(alive) = room.upgrade() else { return };
                let mut members = alive.members.lock().await;
                for (id, fields) in streams.into_iter().flat_map(|(_, entries)| entries) {
                    wskit::broadcast(members.connections.values(), line(&fields).as_str());
                    members.last = id;
                }
            }
        }
    }

    /// One member: a name, then lines, as in the one-process room.
    pub(super) async fn chat(mut ws: Connection, room: Arc<Room>) -> wskit::Result<()> {
        let name = one_line(ws.recv().await?.as_text()?);
        room.join(&ws).await?;
        let talked = talk(&mut ws, &room, &name).await;
        // A member until here, whatever happened.
        room.members.lock().await.connections.remove(&ws.id());
        talked?;
        room.say(&format!("*** {name} left")).await
    }

    async fn talk(ws: &mut Connection, room: &Room, name: &str) -> wskit::Result<()> {
        room.say(&format!("*** {name} joined")).await?;
        while let Some(Ok(message)) = ws.next().await {
            let Ok(text) = message.as_text() else {
                continue;
            };
            if let Err(error) = room.say(&format!("{name}: {}", one_line(text))).await {
                // Told to the one who said it (after a timeout, Redis may have taken it).
                wskit::broadcast([&*ws], format!("*** may not have been sent: {error}"));
            }
        }
        Ok(())
    }
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
