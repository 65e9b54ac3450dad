//! `wskit serve echo|broadcast [ADDR]`: an echo server, and a chat-style broadcast server.
//!
//! Both serve until SIGTERM or Ctrl-C, then shut down gracefully: every connection is closed
//! with 1001 (going away) and the server waits for them, as [`wskit::Server::run_until`] does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use wskit::server::Serve;
use wskit::{Connection, ServerTls};

use crate::Exit;
use crate::config::{ServeConfig, ServeKind};
use crate::terminal::eprint_line;

/// Run the server until a shutdown signal; returns the exit code.
pub(crate) async fn run(config: &ServeConfig) -> Exit {
    let tls = match &config.tls {
        Some((cert, key)) => match ServerTls::from_pem_files(cert, key) {
            Ok(tls) => Some(tls),
            Err(error) => {
                eprint_line(&format!("wskit: cannot load the TLS certificate: {error}"));
                return Exit::Error;
            }
        },
        None => None,
    };
    let addr = config.addr.as_str();
    let started = match config.kind {
        ServeKind::Echo => configure(wskit::serve(echo, addr), config, tls).await,
        ServeKind::Broadcast => {
            let room = Arc::new(Room::default());
            let handler = move |ws| broadcast(ws, Arc::clone(&room));
            configure(wskit::serve(handler, addr), config, tls).await
        }
    };
    let server = match started {
        Ok(server) => server,
        Err(error) => {
            eprint_line(&format!("wskit: cannot listen on {addr}: {error}"));
            return Exit::Error;
        }
    };
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    for local in server.local_addrs() {
        eprint_line(&format!("listening on {scheme}://{local}"));
    }
    let signal = async {
        wskit::shutdown_signal().await;
        eprint_line("shutting down");
    };
    match server.run_until(signal).await {
        Ok(()) => Exit::Ok,
        Err(error) => {
            eprint_line(&format!("wskit: server failed: {error}"));
            Exit::Error
        }
    }
}

/// Apply the command line's options to a server being configured.
fn configure<H>(serve: Serve<H>, config: &ServeConfig, tls: Option<ServerTls>) -> Serve<H> {
    let mut serve = serve
        .max_size(config.max_size)
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout);
    if !config.compression {
        serve = serve.no_compression();
    }
    if let Some(tls) = tls {
        serve = serve.tls(tls);
    }
    serve
}

/// Send every message back. A client that goes away without closing is not an error worth
/// logging for an echo server, so a closed connection ends the handler quietly.
async fn echo(ws: Connection) {
    while let Ok(message) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
    tracing::debug!(id = ws.id(), code = ?ws.close_code(), "echo connection done");
}

/// The clients of the broadcast server.
///
/// The handler cannot reach its [`wskit::Server`] (which would give the open connections), so
/// the room keeps its own list, as Python websockets' broadcast examples do.
#[derive(Debug, Default)]
struct Room {
    members: Mutex<BTreeMap<u64, Connection>>,
}

/// Takes a connection out of the room when its handler ends, however it ends.
struct Membership<'a> {
    room: &'a Room,
    id: u64,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        self.room
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Send every message received to every client in the room, the sender included. Slow
/// clients are skipped rather than waited for (see [`wskit::broadcast`]).
async fn broadcast(ws: Connection, room: Arc<Room>) {
    room.members
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ws.id(), ws.clone());
    let _membership = Membership {
        room: &room,
        id: ws.id(),
    };
    while let Ok(message) = ws.recv().await {
        // Under the lock, so that every client gets the messages in the same order.
        let members = room.members.lock().unwrap_or_else(PoisonError::into_inner);
        let report = wskit::broadcast(members.values(), message);
        if !report.skipped.is_empty() {
            tracing::debug!(skipped = ?report, "broadcast skipped slow or closed clients");
        }
    }
}
