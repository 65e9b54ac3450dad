//! Python websockets, the library wskit is the Rust counterpart of, against wskit in both roles,
//! each with permessage-deflate as it offers or accepts it by default (context takeover both
//! ways; Python websockets compresses with zlib at memLevel 5 and zlib's default level, so wskit
//! inflates blocks with codes of their own and zlib inflates wskit's).
//! Python websockets comes from the virtual environment `.ci/run` makes,
//! `target/interop-venv` (or `WSKIT_PYTHON`); without it the tests say "skipped", except under
//! CI, where they fail.

use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use wskit::{CloseCode, Connection, Message};

use crate::example_support::on_ci;
use crate::support::{echo, uri, within};

/// The messages both sides exchange: thirty different JSON documents of about 1 KiB (each
/// refers back into the ones before with context takeover), 200 KB of text, 50 KB of noise.
const MESSAGES: &str = r#"
import json, random
def messages():
    rng = random.Random(7)
    out = []
    for i in range(30):
        rows = [{"symbol": "S%d" % rng.randrange(50), "bid": rng.randrange(10**6) / 100,
                 "size": rng.randrange(5000)} for _ in range(18)]
        out.append(json.dumps({"seq": i, "rows": rows}))
    out.append("".join("line %d of a long text message\n" % i for i in range(7000)))
    out.append(bytes(rng.randrange(256) for _ in range(50_000)))
    return out
"#;

/// The venv's python with websockets importable; `None` (and "skipped") outside CI without it.
fn python() -> Option<PathBuf> {
    let path = std::env::var_os("WSKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python")
        });
    let works = Command::new(&path)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return Some(path);
    }
    let message = format!(
        "Python websockets is not at {} (.ci/run makes that venv: python3 -m venv \
         target/interop-venv && target/interop-venv/bin/pip install websockets)",
        path.display()
    );
    assert!(!on_ci(), "{message}");
    let _ = writeln!(std::io::stderr(), "skipped: {message}");
    None
}

/// A child process killed when dropped, even when the test fails.
struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python websockets' client, offering compression as it does by default, against a wskit
/// echo server: every message comes back as it was sent, compressed both ways.
#[tokio::test]
async fn python_websockets_client_against_a_wskit_server() {
    let Some(python) = python() else { return };
    let (compressed, mut was_compressed) = tokio::sync::mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let compressed = compressed.clone();
            async move {
                let _ = compressed.send(ws.is_compressed());
                echo(ws).await
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let script = format!(
        "{MESSAGES}
import sys
from websockets.sync.client import connect
with connect(sys.argv[1], max_size=None) as ws:
    print(ws.response.headers['Sec-WebSocket-Extensions'])
    for message in messages():
        ws.send(message)
        assert ws.recv() == message
print('ok')
"
    );
    let url = uri(&server, "/");
    let output = within(tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", &script, &url]).output()
    }))
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("permessage-deflate"), "{stdout}");
    assert!(stdout.contains("ok"), "{stdout}");
    assert_eq!(was_compressed.recv().await, Some(true));
}

/// A wskit client, offering compression by default, against Python websockets' echo server.
#[tokio::test]
async fn wskit_client_against_a_python_websockets_server() {
    let Some(python) = python() else { return };
    let script = "
from websockets.sync.server import serve
def handler(ws):
    for message in ws:
        ws.send(message)
with serve(handler, '127.0.0.1', 0, max_size=None) as server:
    print(server.socket.getsockname()[1], flush=True)
    server.serve_forever()
";
    let mut child = Python(
        Command::new(python)
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let port = within(tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().parse::<u16>().unwrap()
    }))
    .await
    .unwrap();
    let ws = within(wskit::connect(format!("ws://127.0.0.1:{port}/")).max_size(None))
        .await
        .unwrap();
    assert!(ws.is_compressed());
    // The same messages, made here: JSON documents that repeat their keys, a long text, noise.
    let mut messages: Vec<Message> = (0..30)
        .map(|i| {
            let rows: Vec<String> = (0..18)
                .map(|j| {
                    format!(
                        r#"{{"symbol": "S{}", "bid": {}.{}, "size": {}}}"#,
                        (i * 7 + j) % 50,
                        i * 131 + j,
                        j % 100,
                        (i + j) * 37
                    )
                })
                .collect();
            Message::from(format!(r#"{{"seq": {i}, "rows": [{}]}}"#, rows.join(", ")))
        })
        .collect();
    messages.push(Message::from(
        (0..7000)
            .map(|i| format!("line {i} of a long text message\n"))
            .collect::<String>(),
    ));
    let mut x = 7u32;
    messages.push(Message::from(
        (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect::<Vec<u8>>(),
    ));
    for message in messages {
        within(ws.send(message.clone())).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), message);
    }
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}
