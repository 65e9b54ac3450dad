//! The server: binding, running and shutting down, the connections it tracks, and what the
//! outcome of a handler does to its connection. Every case runs against both I/O layers (the
//! async `wskit::Server` and `wskit::sync::Server`, see layers.rs), a client of the same layer
//! as the server, except `run_until` with a future of the test's own, which the blocking
//! server has no twin of (its `run_until_signal` waits for a real SIGTERM or Ctrl-C: see
//! examples.rs, which sends one to the blocking example server).

#![cfg(feature = "sync")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wskit::{CloseCode, Connection, Error, Message, PeerAddr};

use crate::layers::{Conn, Handler, LAYERS, Layer, Opt, Running, client_connect, start};
use crate::raw::{read_head, status, upgrade_request};
use crate::support::{echo, eventually, idle, uri, within};

/// A server of `layer` on loopback with a handler of each layer: `$async` for the async
/// server, `$sync` for the blocking one.
macro_rules! serve {
    ($layer:expr, $async:expr, $sync:expr $(,)?) => {
        match $layer {
            Layer::Async => Running::Async(
                within(wskit::serve($async, "127.0.0.1:0"))
                    .await
                    .expect("serve"),
            ),
            Layer::Sync => Running::Sync(
                wskit::sync::serve($sync, "127.0.0.1:0")
                    .start()
                    .expect("serve"),
            ),
        }
    };
}

/// The blocking twin of `support::echo`.
fn sync_echo(ws: wskit::sync::Connection) -> wskit::Result<()> {
    loop {
        match ws.recv() {
            Ok(message) => ws.send(message)?,
            Err(error) if error.is_closed_ok() => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// A client of `layer` connected to `uri`, which must succeed.
async fn connect(layer: Layer, uri: String) -> Conn {
    client_connect(layer, uri)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"))
}

fn tcp_addr(server: &Running) -> Option<std::net::SocketAddr> {
    match server {
        Running::Async(server) => server.local_addr(),
        Running::Sync(server) => server.local_addr(),
    }
}

fn local_addrs(server: &Running) -> Vec<PeerAddr> {
    match server {
        Running::Async(server) => server.local_addrs(),
        Running::Sync(server) => server.local_addrs(),
    }
}

fn is_closing(server: &Running) -> bool {
    match server {
        Running::Async(server) => server.is_closing(),
        Running::Sync(server) => server.is_closing(),
    }
}

/// The remote addresses of the connections the server lists.
fn remote_addrs(server: &Running) -> Vec<PeerAddr> {
    match server {
        Running::Async(server) => server
            .connections()
            .iter()
            .map(|c| c.remote_addr().cloned().expect("a remote address"))
            .collect(),
        Running::Sync(server) => server
            .connections()
            .iter()
            .map(|c| c.remote_addr().cloned().expect("a remote address"))
            .collect(),
    }
}

/// `run` on a clone of the server, on a task (the blocking one on a blocking thread).
fn run(server: &Running) -> JoinHandle<wskit::Result<()>> {
    match server {
        Running::Async(server) => {
            let server = server.clone();
            tokio::spawn(async move { server.run().await })
        }
        Running::Sync(server) => {
            let server = server.clone();
            tokio::task::spawn_blocking(move || server.run())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binds_before_returning() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let addr = tcp_addr(&server).expect("a TCP address");
        assert!(addr.ip().is_loopback(), "{layer:?}: {addr}");
        assert_ne!(addr.port(), 0, "{layer:?}: the chosen port is reported");
        assert_eq!(local_addrs(&server), vec![PeerAddr::Tcp(addr)], "{layer:?}");
        assert!(!is_closing(&server), "{layer:?}");
        // Listening as soon as `serve` returned: nothing else needs to be awaited.
        within(TcpStream::connect(addr))
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error}"));
        let ws = connect(layer, server.uri()).await;
        ws.assert_echoes("ping?").await;
        server.close();
        server.wait_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_on_an_address_in_use() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let error = match layer {
            Layer::Async => within(wskit::serve(echo, addr)).await.unwrap_err(),
            Layer::Sync => wskit::sync::serve(sync_echo, addr).start().unwrap_err(),
        };
        assert!(error.is_io(), "{layer:?}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listener_serves_on_an_existing_listener() {
    for layer in LAYERS {
        let (addr, server) = match layer {
            Layer::Async => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = within(wskit::serve_listener(echo, listener)).await.unwrap();
                (addr, Running::Async(server))
            }
            Layer::Sync => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let server = wskit::sync::serve_listener(sync_echo, listener)
                    .start()
                    .unwrap();
                (addr, Running::Sync(server))
            }
        };
        assert_eq!(tcp_addr(&server), Some(addr), "{layer:?}");
        let ws = connect(layer, format!("ws://{addr}/")).await;
        ws.assert_echoes("ping?").await;
        server.close();
        server.wait_closed().await;
    }
}

/// Async only: `run_until` takes a future, which the blocking server has no twin of; its
/// `run_until_signal` needs a real SIGTERM, which would reach the whole test process
/// (examples.rs sends one to the blocking example server, a process of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_signal_closes_connections_with_1001() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    Conn::Async(ws.clone()).assert_echoes("ping?").await;
    let (stop, signal) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        server
            .run_until(async {
                let _ = signal.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!running.is_finished(), "serves until the signal");
    stop.send(()).unwrap();
    assert!(within(ws.next()).await.is_none(), "1001 is a normal close");
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
    within(running).await.unwrap().unwrap();
    // The listener is gone.
    let refused = within(TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_until_closed_from_another_handle() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = connect(layer, server.uri()).await;
        let running = run(&server);
        ws.assert_echoes("ping?").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!running.is_finished(), "{layer:?}: serves until closed");
        server.close();
        assert!(is_closing(&server), "{layer:?}");
        // Bounded (the blocking `run` is `wait_closed`): then `run` returns at once.
        server.wait_closed().await;
        within(running)
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{layer:?}: {closed}");
        assert!(closed.is_ok(), "{layer:?}: {closed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_connections_and_wait_closed_waits_for_handlers() {
    for layer in LAYERS {
        let finished = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&finished);
        // Slow cleanup after the connection closed: wait_closed must wait for it.
        let server = serve!(
            layer,
            move |ws: Connection| {
                let counter = Arc::clone(&counter);
                async move {
                    idle(ws).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            },
            move |ws: wskit::sync::Connection| {
                while ws.recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(100));
                counter.fetch_add(1, Ordering::SeqCst);
            },
        );
        let addr = server.addr();
        let a = connect(layer, server.uri()).await;
        let b = connect(layer, server.uri()).await;
        eventually("both connections are registered", || {
            server.connection_count() == 2
        })
        .await;
        server.close();
        for ws in [&a, &b] {
            let closed = ws.wait_closed().await;
            assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{layer:?}: {closed}");
            assert_eq!(
                closed.sent.as_ref().map(|f| f.code),
                Some(CloseCode::GOING_AWAY),
                "{layer:?}"
            );
        }
        server.wait_closed().await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            2,
            "{layer:?}: handlers finished"
        );
        assert_eq!(server.connection_count(), 0, "{layer:?}");
        let error = client_connect(layer, format!("ws://{addr}/"))
            .await
            .unwrap_err();
        assert!(error.is_io(), "{layer:?}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_answers_handshakes_in_flight_with_503() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let addr = server.addr();
        // A client whose TCP connection is accepted but whose request is not sent yet: a
        // client connecting after it is accepted after it, so once that one is open, this
        // one is in flight.
        let mut stream = within(TcpStream::connect(addr)).await.unwrap();
        let after = connect(layer, server.uri()).await;
        after.assert_echoes("accepted").await;
        server.close();
        stream
            .write_all(upgrade_request("/").as_bytes())
            .await
            .unwrap();
        let mut buf = bytes::BytesMut::new();
        let head = within(read_head(&mut stream, &mut buf))
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error}"));
        assert_eq!(status(&head), 503, "{layer:?}: {head}");
        drop(stream);
        server.wait_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_lists_the_open_connections() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        assert_eq!(server.connection_count(), 0, "{layer:?}");
        let a = connect(layer, server.uri()).await;
        let b = connect(layer, server.uri()).await;
        eventually("both connections are listed", || {
            server.connection_count() == 2
        })
        .await;
        let mut remotes = remote_addrs(&server);
        let mut locals = vec![a.local_addr().unwrap(), b.local_addr().unwrap()];
        remotes.sort_by_key(ToString::to_string);
        locals.sort_by_key(ToString::to_string);
        assert_eq!(
            remotes, locals,
            "{layer:?}: the server's connections are these clients"
        );
        a.close(1000, "").await.unwrap();
        eventually("the closed connection is removed", || {
            server.connection_count() == 1
        })
        .await;
        assert_eq!(
            remote_addrs(&server),
            vec![b.local_addr().unwrap()],
            "{layer:?}: the open one remains"
        );
        server.close();
        server.wait_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_returning_ok_closes_with_1000() {
    for layer in LAYERS {
        let server = serve!(
            layer,
            |ws: Connection| async move {
                ws.send("bye").await?;
                Ok::<(), Error>(())
            },
            |ws: wskit::sync::Connection| {
                ws.send("bye")?;
                Ok::<(), Error>(())
            },
        );
        let ws = connect(layer, server.uri()).await;
        // The message, then the end of the iteration: a normal closure.
        let (messages, error) = ws.drain().await;
        assert_eq!(messages, [Message::from("bye")], "{layer:?}");
        assert!(error.is_none(), "{layer:?}: {error:?}");
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::NORMAL, "{layer:?}: {closed}");
        assert!(closed.is_ok(), "{layer:?}: {closed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_returning_unit_closes_with_1000() {
    for layer in LAYERS {
        let server = serve!(
            layer,
            |_ws: Connection| async {},
            |_ws: wskit::sync::Connection| {},
        );
        let ws = connect(layer, server.uri()).await;
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::NORMAL, "{layer:?}: {closed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_returning_err_closes_with_1011() {
    for layer in LAYERS {
        let server = failing_server(layer, "the handler failed").await;
        let error = closed_with_1011(layer, &server).await;
        assert!(!error.is_closed_ok(), "{layer:?}: {error:?}");
    }
}

/// A server of `layer` whose handler returns an error with `message` at once.
async fn failing_server(layer: Layer, message: &'static str) -> Running {
    serve!(
        layer,
        move |_ws: Connection| async move { Err::<(), _>(message.to_owned()) },
        move |_ws: wskit::sync::Connection| Err::<(), _>(message.to_owned()),
    )
}

/// Connect a client of `layer` to `server` and wait for the connection to end with 1011
/// (internal error), before any message.
async fn closed_with_1011(layer: Layer, server: &Running) -> Error {
    let ws = connect(layer, server.uri()).await;
    let (messages, error) = ws.drain().await;
    assert!(messages.is_empty(), "{layer:?}: {messages:?}");
    let error = error.unwrap_or_else(|| panic!("{layer:?}: an error, not the end"));
    assert_eq!(
        error.close_code(),
        Some(CloseCode::INTERNAL_ERROR),
        "{layer:?}: {error}"
    );
    error
}

/// A handler that fails because another connection closed (a proxy whose upstream failed)
/// fails its own, still open connection with 1011: only its own connection closing excuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_another_closed_connection_is_a_handler_failure() {
    for layer in LAYERS {
        let upstream = failing_server(layer, "upstream failure").await;
        let upstream_uri = upstream.uri();
        let async_uri = upstream_uri.clone();
        let proxy = serve!(
            layer,
            move |_ws: Connection| {
                let upstream_uri = async_uri.clone();
                async move {
                    let upstream = wskit::connect(upstream_uri).no_proxy().await?;
                    let message = upstream.recv().await?; // fails: upstream closed with 1011
                    drop(message);
                    Ok::<(), Error>(())
                }
            },
            move |_ws: wskit::sync::Connection| {
                let upstream = wskit::sync::connect(upstream_uri.clone())
                    .no_proxy()
                    .open()?;
                let message = upstream.recv()?; // fails: upstream closed with 1011
                drop(message);
                Ok::<(), Error>(())
            },
        );
        closed_with_1011(layer, &proxy).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_closes_with_1011_and_the_server_keeps_serving() {
    for layer in LAYERS {
        let server = serve!(
            layer,
            |ws: Connection| async move {
                while let Ok(message) = ws.recv().await {
                    if message.as_text() == Ok("panic") {
                        panic!("the handler panicked on purpose");
                    }
                    ws.send(message).await?;
                }
                Ok::<(), Error>(())
            },
            |ws: wskit::sync::Connection| {
                while let Ok(message) = ws.recv() {
                    if message.as_text() == Ok("panic") {
                        panic!("the handler panicked on purpose");
                    }
                    ws.send(message)?;
                }
                Ok::<(), Error>(())
            },
        );
        let first = connect(layer, server.uri()).await;
        first.send("panic").await.unwrap();
        let (messages, error) = first.drain().await;
        assert!(messages.is_empty(), "{layer:?}: {messages:?}");
        let error = error.unwrap_or_else(|| panic!("{layer:?}: an error, not the end"));
        assert_eq!(
            error.close_code(),
            Some(CloseCode::INTERNAL_ERROR),
            "{layer:?}: {error}"
        );
        // The server survived: a new connection works.
        let second = connect(layer, server.uri()).await;
        second.assert_echoes("ping?").await;
        assert!(!is_closing(&server), "{layer:?}");
    }
}

/// Connect a client of `layer` to `server`, its first connection, and wait until the server
/// counts it.
async fn connect_and_register(layer: Layer, server: &Running) -> Conn {
    let ws = connect(layer, server.uri()).await;
    eventually("the first connection is registered", || {
        server.connection_count() == 1
    })
    .await;
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_rejects_extra_handshakes_with_503() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::MaxConnections(1)]).await;
        let first = connect_and_register(layer, &server).await;
        let error = client_connect(layer, server.uri()).await.unwrap_err();
        assert_eq!(
            error.response().map(|r| r.status),
            Some(503),
            "{layer:?}: {error:?}"
        );
        assert!(error.is_transient(), "{layer:?}: {error:?}");
        first.assert_echoes("ping?").await;
        first.close(1000, "").await.unwrap();
        eventually("the first connection is gone", || {
            server.connection_count() == 0
        })
        .await;
        let third = connect(layer, server.uri()).await;
        third.assert_echoes("ping?").await;
    }
}

fn health_check(
    _: &mut wskit::server::Handshake<'_>,
    request: &wskit::Request,
) -> Option<wskit::Response> {
    (request.path == "/health").then(|| wskit::Response::new(200, "OK\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_request_answers_health_checks_when_the_server_is_full() {
    for layer in LAYERS {
        let opts = [Opt::MaxConnections(1), Opt::ProcessRequest(health_check)];
        let server = start(layer, Handler::Echo, &opts).await;
        let first = connect_and_register(layer, &server).await;
        let (head, body) = crate::raw::http_get(server.addr(), "/health").await;
        assert_eq!(status(&head), 200, "{layer:?}: {head}");
        assert_eq!(body, b"OK\n", "{layer:?}");
        // The WebSocket handshake is still refused: the one place is taken.
        let error = client_connect(layer, server.uri()).await.unwrap_err();
        assert_eq!(
            error.response().map(|r| r.status),
            Some(503),
            "{layer:?}: {error:?}"
        );
        first.assert_echoes("ping?").await;
    }
}

/// A client of `layer` on the Unix socket at `path`, `uri` giving the host and path.
#[cfg(unix)]
async fn unix_connect(layer: Layer, path: &Path, uri: &str) -> Conn {
    let (path, uri) = (path.to_owned(), uri.to_owned());
    let connected = match layer {
        Layer::Async => within(wskit::unix_connect(&path, uri))
            .await
            .map(Conn::Async),
        Layer::Sync => within(tokio::task::spawn_blocking(move || {
            wskit::sync::unix_connect(path, uri).open()
        }))
        .await
        .unwrap()
        .map(Conn::Sync),
    };
    connected.unwrap_or_else(|error| panic!("{layer:?}: {error:?}"))
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_serve_and_unix_connect() {
    for layer in LAYERS {
        let path = std::env::temp_dir().join(format!(
            "wskit-it-{}-{}.sock",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server = match layer {
            Layer::Async => Running::Async(
                within(wskit::unix_serve(
                    move |ws: Connection| {
                        let tx = tx.clone();
                        async move {
                            let _ = tx.send(Conn::Async(ws.clone()));
                            echo(ws).await
                        }
                    },
                    &path,
                ))
                .await
                .unwrap(),
            ),
            Layer::Sync => Running::Sync(
                wskit::sync::unix_serve(
                    move |ws: wskit::sync::Connection| {
                        let _ = tx.send(Conn::Sync(ws.clone()));
                        sync_echo(ws)
                    },
                    &path,
                )
                .start()
                .unwrap(),
            ),
        };
        assert_eq!(tcp_addr(&server), None, "{layer:?}: no TCP address");
        assert_eq!(
            local_addrs(&server),
            vec![PeerAddr::Unix(Some(path.clone()))],
            "{layer:?}"
        );
        let ws = unix_connect(layer, &path, "ws://localhost/chat").await;
        assert_eq!(ws.path(), "/chat", "{layer:?}");
        assert_eq!(
            ws.remote_addr(),
            Some(PeerAddr::Unix(Some(path.clone()))),
            "{layer:?}"
        );
        ws.assert_echoes("ping?").await;
        let server_side = within(rx.recv()).await.unwrap();
        assert_eq!(server_side.path(), "/chat", "{layer:?}");
        assert_eq!(
            server_side.request().unwrap().headers.get("Host"),
            Some("localhost"),
            "{layer:?}"
        );
        assert_eq!(
            server_side.local_addr(),
            Some(PeerAddr::Unix(Some(path.clone()))),
            "{layer:?}"
        );
        // The path is taken.
        let error = match layer {
            Layer::Async => within(wskit::unix_serve(echo, &path)).await.unwrap_err(),
            Layer::Sync => wskit::sync::unix_serve(sync_echo, &path)
                .start()
                .unwrap_err(),
        };
        assert!(error.is_io(), "{layer:?}: {error:?}");
        ws.close(1000, "").await.unwrap();
        server.close();
        server.wait_closed().await;
        assert!(
            !path.exists(),
            "{layer:?}: the socket file is removed on close"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_for_concurrent_handshakes() {
    for layer in LAYERS {
        let server = start(layer, Handler::Idle, &[Opt::MaxConnections(2)]).await;
        let url = server.uri();
        let attempts: Vec<_> = (0..8)
            .map(|_| tokio::spawn(client_connect(layer, url.clone())))
            .collect();
        let mut open = Vec::new();
        let mut refused = 0;
        for attempt in attempts {
            match within(attempt).await.unwrap() {
                Ok(ws) => open.push(ws),
                Err(error) => {
                    assert_eq!(
                        error.response().map(|r| r.status),
                        Some(503),
                        "{layer:?}: {error:?}"
                    );
                    refused += 1;
                }
            }
        }
        assert_eq!(
            (open.len(), refused),
            (2, 6),
            "{layer:?}: max_connections exceeded"
        );
        assert_eq!(server.connection_count(), 2, "{layer:?}");
    }
}

/// Four workers, as before the conversion: the async server's slow `process_response` blocks
/// a worker for each handshake, and the three handshakes are to be in it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_counts_handshakes_in_progress() {
    for layer in LAYERS {
        // A slow process_response widens the gap between the max_connections check and the
        // connection being registered: two handshakes must not both get through it.
        let opts = [
            Opt::MaxConnections(1),
            Opt::ProcessResponse(|_, _| std::thread::sleep(Duration::from_millis(100))),
        ];
        let server = start(layer, Handler::Idle, &opts).await;
        let url = server.uri();
        let attempts: Vec<_> = (0..3)
            .map(|_| tokio::spawn(client_connect(layer, url.clone())))
            .collect();
        let mut open = Vec::new();
        for attempt in attempts {
            if let Ok(ws) = within(attempt).await.unwrap() {
                open.push(ws);
            }
        }
        assert_eq!(
            open.len(),
            1,
            "{layer:?}: max_connections(1) let {} through",
            open.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_handles_are_dropped_keeps_serving() {
    for layer in LAYERS {
        // `let _ = serve(..)` detaches the server, like a spawned task; it used to stop it.
        // (The blocking one's accept thread then lives as long as the test process.)
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        match layer {
            Layer::Async => {
                listener.set_nonblocking(true).unwrap();
                let listener = TcpListener::from_std(listener).unwrap();
                let _ = within(wskit::serve_listener(echo, listener)).await.unwrap();
            }
            Layer::Sync => {
                let _ = wskit::sync::serve_listener(sync_echo, listener)
                    .start()
                    .unwrap();
            }
        }
        let ws = connect(layer, format!("ws://{addr}/")).await;
        ws.send("still serving").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), "still serving", "{layer:?}");
        // A clone's close still stops it.
        let handle = match layer {
            Layer::Async => {
                let server = within(wskit::serve(echo, "127.0.0.1:0")).await.unwrap();
                let handle = server.clone();
                drop(server);
                Running::Async(handle)
            }
            Layer::Sync => {
                let server = wskit::sync::serve(sync_echo, "127.0.0.1:0")
                    .start()
                    .unwrap();
                let handle = server.clone();
                drop(server);
                Running::Sync(handle)
            }
        };
        let url = handle.uri();
        connect(layer, url.clone()).await;
        handle.close();
        handle.wait_closed().await;
        assert!(
            client_connect(layer, url).await.is_err(),
            "{layer:?}: still serving after close"
        );
    }
}
