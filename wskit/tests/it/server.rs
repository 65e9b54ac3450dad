//! The server: binding, running and shutting down, the connections it tracks, and what the
//! outcome of a handler does to its connection.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use wskit::{CloseCode, Connection, Error, Message, PeerAddr};

use crate::raw::{read_head, status, upgrade_request};
use crate::support::{echo, eventually, idle, uri, within};

/// A round trip through an echo server.
async fn assert_echoes(ws: &Connection) {
    ws.send("ping?").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("ping?"));
}

#[tokio::test]
async fn serve_binds_before_returning() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().expect("a TCP address");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), 0, "the chosen port is reported");
    assert_eq!(server.local_addrs(), vec![PeerAddr::Tcp(addr)]);
    assert!(!server.is_closing());
    // Listening as soon as `serve` returned: nothing else needs to be awaited.
    within(TcpStream::connect(addr)).await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_echoes(&ws).await;
    server.close();
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn serve_fails_on_an_address_in_use() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let error = wskit::serve(echo, addr).await.unwrap_err();
    assert!(error.is_io(), "{error:?}");
}

#[tokio::test]
async fn serve_listener_serves_on_an_existing_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = wskit::serve_listener(echo, listener).await.unwrap();
    assert_eq!(server.local_addr(), Some(addr));
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    assert_echoes(&ws).await;
    server.close();
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn run_until_signal_closes_connections_with_1001() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_echoes(&ws).await;
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

#[tokio::test]
async fn run_serves_until_closed_from_another_handle() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let handle = server.clone();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let running = tokio::spawn(async move { server.run().await });
    assert_echoes(&ws).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!running.is_finished(), "serves until closed");
    handle.close();
    assert!(handle.is_closing());
    within(running).await.unwrap().unwrap();
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
    assert!(closed.is_ok(), "{closed}");
}

#[tokio::test]
async fn close_closes_connections_and_wait_closed_waits_for_handlers() {
    let finished = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&finished);
    let server = wskit::serve(
        move |ws: Connection| {
            let counter = Arc::clone(&counter);
            async move {
                idle(ws).await;
                // Slow cleanup after the connection closed: wait_closed must wait for it.
                tokio::time::sleep(Duration::from_millis(100)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let a = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let b = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    eventually("both connections are registered", || {
        server.connections().len() == 2
    })
    .await;
    server.close();
    for ws in [&a, &b] {
        let closed = within(ws.wait_closed()).await;
        assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
        assert_eq!(
            closed.sent.as_ref().map(|f| f.code),
            Some(CloseCode::GOING_AWAY)
        );
    }
    within(server.wait_closed()).await;
    assert_eq!(finished.load(Ordering::SeqCst), 2, "handlers finished");
    assert!(server.connections().is_empty());
    let error = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(error.is_io(), "{error:?}");
}

#[tokio::test]
async fn close_answers_handshakes_in_flight_with_503() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    // A client whose TCP connection is accepted but whose request is not sent yet.
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.close();
    stream
        .write_all(upgrade_request("/").as_bytes())
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let head = within(read_head(&mut stream, &mut buf)).await.unwrap();
    assert_eq!(status(&head), 503, "{head}");
    drop(stream);
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn connections_lists_the_open_connections() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    assert!(server.connections().is_empty());
    let a = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let b = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    eventually("both connections are listed", || {
        server.connections().len() == 2
    })
    .await;
    let mut remotes: Vec<PeerAddr> = server
        .connections()
        .iter()
        .map(|c| c.remote_addr().cloned().unwrap())
        .collect();
    let mut locals = vec![
        a.local_addr().cloned().unwrap(),
        b.local_addr().cloned().unwrap(),
    ];
    remotes.sort_by_key(ToString::to_string);
    locals.sort_by_key(ToString::to_string);
    assert_eq!(
        remotes, locals,
        "the server's connections are these clients"
    );
    within(a.close(CloseCode::NORMAL, "")).await.unwrap();
    eventually("the closed connection is removed", || {
        server.connections().len() == 1
    })
    .await;
    assert_eq!(
        server.connections()[0].remote_addr(),
        b.local_addr(),
        "the open one remains"
    );
    server.close();
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn handler_returning_ok_closes_with_1000() {
    let server = wskit::serve(
        |ws: Connection| async move {
            ws.send("bye").await?;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_eq!(
        within(ws.next()).await.unwrap().unwrap(),
        Message::from("bye")
    );
    assert!(within(ws.next()).await.is_none());
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL, "{closed}");
    assert!(closed.is_ok(), "{closed}");
}

#[tokio::test]
async fn handler_returning_unit_closes_with_1000() {
    let server = wskit::serve(|_ws: Connection| async {}, "127.0.0.1:0")
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL, "{closed}");
}

#[tokio::test]
async fn handler_returning_err_closes_with_1011() {
    let server = failing_server("the handler failed").await;
    let error = closed_with_1011(&server).await;
    assert!(!error.is_closed_ok());
}

/// A server whose handler returns an error with `message` at once.
async fn failing_server(message: &'static str) -> wskit::Server {
    wskit::serve(
        move |_ws: Connection| async move { Err::<(), _>(message.to_owned()) },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

/// Connect to `server` and wait for the connection to end with 1011 (internal error).
async fn closed_with_1011(server: &wskit::Server) -> Error {
    let mut ws = within(wskit::connect(uri(server, "/"))).await.unwrap();
    let error = within(ws.next())
        .await
        .expect("an error, not the end")
        .unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::INTERNAL_ERROR),
        "{error}"
    );
    error
}

/// A handler that fails because another connection closed (a proxy whose upstream failed)
/// fails its own, still open connection with 1011: only its own connection closing excuses it.
#[tokio::test]
async fn an_error_from_another_closed_connection_is_a_handler_failure() {
    let upstream = failing_server("upstream failure").await;
    let upstream_uri = uri(&upstream, "/");
    let proxy = wskit::serve(
        move |_ws: Connection| {
            let upstream_uri = upstream_uri.clone();
            async move {
                let upstream = wskit::connect(upstream_uri).await?;
                let message = upstream.recv().await?; // fails: upstream closed with 1011
                drop(message);
                Ok::<(), Error>(())
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    closed_with_1011(&proxy).await;
}

#[tokio::test]
async fn handler_panic_closes_with_1011_and_the_server_keeps_serving() {
    let server = wskit::serve(
        |ws: Connection| async move {
            while let Ok(message) = ws.recv().await {
                if message.as_text() == Ok("panic") {
                    panic!("the handler panicked on purpose");
                }
                ws.send(message).await?;
            }
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut first = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    first.send("panic").await.unwrap();
    let error = within(first.next()).await.expect("an error").unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::INTERNAL_ERROR),
        "{error}"
    );
    // The server survived: a new connection works.
    let second = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_echoes(&second).await;
    assert!(!server.is_closing());
}

/// Connect to `server`, its first connection, and wait until the server counts it.
async fn connect_and_register(server: &wskit::Server) -> Connection {
    let ws = within(wskit::connect(uri(server, "/"))).await.unwrap();
    eventually("the first connection is registered", || {
        server.connections().len() == 1
    })
    .await;
    ws
}

#[tokio::test]
async fn max_connections_rejects_extra_handshakes_with_503() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_connections(1)
        .await
        .unwrap();
    let first = connect_and_register(&server).await;
    let error = within(wskit::connect(uri(&server, "/"))).await.unwrap_err();
    assert_eq!(error.response().map(|r| r.status), Some(503), "{error:?}");
    assert!(error.is_transient());
    assert_echoes(&first).await;
    within(first.close(CloseCode::NORMAL, "")).await.unwrap();
    eventually("the first connection is gone", || {
        server.connections().is_empty()
    })
    .await;
    let third = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_echoes(&third).await;
}

#[tokio::test]
async fn process_request_answers_health_checks_when_the_server_is_full() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_connections(1)
        .process_request(|_, request| {
            (request.path == "/health").then(|| wskit::Response::new(200, "OK\n"))
        })
        .await
        .unwrap();
    let first = connect_and_register(&server).await;
    let addr = server.local_addr().unwrap();
    let (head, body) = crate::raw::http_get(addr, "/health").await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"OK\n");
    // The WebSocket handshake is still refused: the one place is taken.
    let error = within(wskit::connect(uri(&server, "/"))).await.unwrap_err();
    assert_eq!(error.response().map(|r| r.status), Some(503), "{error:?}");
    assert_echoes(&first).await;
}

#[cfg(unix)]
#[tokio::test]
async fn unix_serve_and_unix_connect() {
    let path = std::env::temp_dir().join(format!(
        "wskit-it-{}-{}.sock",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = wskit::unix_serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ws.clone());
                echo(ws).await
            }
        },
        &path,
    )
    .await
    .unwrap();
    assert_eq!(server.local_addr(), None, "no TCP address");
    assert_eq!(
        server.local_addrs(),
        vec![PeerAddr::Unix(Some(path.clone()))]
    );
    let ws = within(wskit::unix_connect(&path, "ws://localhost/chat"))
        .await
        .unwrap();
    assert_eq!(ws.path(), "/chat");
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Unix(Some(path.clone()))));
    assert_echoes(&ws).await;
    let server_side = within(rx.recv()).await.unwrap();
    assert_eq!(server_side.path(), "/chat");
    assert_eq!(
        server_side.request().unwrap().headers.get("Host"),
        Some("localhost")
    );
    assert_eq!(
        server_side.local_addr(),
        Some(&PeerAddr::Unix(Some(path.clone())))
    );
    // The path is taken.
    let error = wskit::unix_serve(echo, &path).await.unwrap_err();
    assert!(error.is_io(), "{error:?}");
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    server.close();
    within(server.wait_closed()).await;
    assert!(!path.exists(), "the socket file is removed on close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_for_concurrent_handshakes() {
    let server = wskit::serve(idle, "127.0.0.1:0")
        .max_connections(2)
        .await
        .unwrap();
    let url = uri(&server, "/");
    let attempts: Vec<_> = (0..8)
        .map(|_| tokio::spawn(wskit::connect(url.clone()).into_future()))
        .collect();
    let mut open = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match within(attempt).await.unwrap() {
            Ok(ws) => open.push(ws),
            Err(error) => {
                assert_eq!(error.response().map(|r| r.status), Some(503), "{error:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (2, 6), "max_connections exceeded");
    assert_eq!(server.connections().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_counts_handshakes_in_progress() {
    // A slow process_response widens the gap between the max_connections check and the
    // connection being registered: two handshakes must not both get through it.
    let server = wskit::serve(idle, "127.0.0.1:0")
        .max_connections(1)
        .process_response(|_, _| std::thread::sleep(Duration::from_millis(100)))
        .await
        .unwrap();
    let url = uri(&server, "/");
    let attempts: Vec<_> = (0..3)
        .map(|_| tokio::spawn(wskit::connect(url.clone()).into_future()))
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
        "max_connections(1) let {} through",
        open.len()
    );
}

#[tokio::test]
async fn a_server_whose_handles_are_dropped_keeps_serving() {
    // `let _ = serve(..).await?` detaches the server, like a spawned task; it used to stop it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _ = wskit::serve_listener(echo, listener).await.unwrap();
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    ws.send("still serving").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "still serving");
    // A clone's close still stops it.
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let url = uri(&server, "/");
    let handle = server.clone();
    drop(server);
    within(wskit::connect(&url)).await.unwrap();
    handle.close();
    within(handle.wait_closed()).await;
    assert!(within(wskit::connect(&url)).await.is_err());
}
