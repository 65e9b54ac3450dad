//! The blocking API (`wskit::sync`) over real sockets, beyond the protocol cases both layers
//! share (layers.rs): TLS, Unix sockets, proxies, threads, timeouts, broadcast, the
//! reconnecting client, authentication, and the async layer on the other end.

#![cfg(feature = "sync")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wskit::sync::{self, Connection};
use wskit::{Backoff, BasicAuth, CloseCode, Error, Message, ProxyError};

use crate::support::{echo, within};

/// A blocking echo handler.
fn sync_echo(ws: Connection) -> wskit::Result<()> {
    for message in &ws {
        ws.send(message?)?;
    }
    Ok(())
}

/// Run blocking `f` off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    within(tokio::task::spawn_blocking(f)).await.unwrap()
}

/// Send, receive it back, close normally.
fn round_trip(ws: &Connection) {
    ws.send("Hello!").unwrap();
    assert_eq!(ws.recv().unwrap(), "Hello!");
    ws.send(vec![1u8, 2, 3]).unwrap();
    assert_eq!(ws.recv().unwrap(), Message::from(vec![1u8, 2, 3]));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    let closed = ws.wait_closed();
    assert!(closed.is_ok(), "{closed}");
}

#[cfg(feature = "rustls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_between_the_layers_both_ways() {
    let cert = crate::tls::TestCert::new(&["localhost"]);
    // A blocking TLS server, and an async one.
    let sync_server = sync::serve(sync_echo, "127.0.0.1:0")
        .tls(cert.server_tls())
        .start()
        .unwrap();
    let async_server = wskit::serve(echo, "127.0.0.1:0")
        .tls(cert.server_tls())
        .await
        .unwrap();
    for port in [
        sync_server.local_addr().unwrap().port(),
        async_server.local_addr().unwrap().port(),
    ] {
        let ca = cert.cert_path.clone();
        let cert_path = ca.clone();
        blocking(move || {
            let ws = sync::connect(format!("wss://localhost:{port}/"))
                .ca_file(ca)
                .no_proxy()
                .open()
                .unwrap();
            assert!(ws.is_compressed());
            // Large enough for many TLS records, both ways at once.
            let big = "x".repeat(300_000);
            ws.send(big.as_str()).unwrap();
            assert_eq!(ws.recv().unwrap().len(), big.len());
            // Uncompressed: 300 KB of TLS records each way per message, more than rustls
            // buffers at once.
            let plain = sync::connect(format!("wss://localhost:{port}/"))
                .ca_file(cert_path)
                .no_proxy()
                .no_compression()
                .open()
                .unwrap();
            let noise: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            for _ in 0..3 {
                plain.send(noise.clone()).unwrap();
            }
            for _ in 0..3 {
                assert!(plain.recv().unwrap().as_bytes() == &noise[..]);
            }
            round_trip(&ws);
        })
        .await;
    }
    // The async client against the blocking TLS server.
    let port = sync_server.local_addr().unwrap().port();
    let ws = wskit::connect(format!("wss://localhost:{port}/"))
        .ca_file(cert.cert_path.clone())
        .no_proxy()
        .await
        .unwrap();
    ws.send("over TLS").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "over TLS");
    // A plain client gets nothing from a TLS server; it keeps serving.
    let plain = blocking(move || {
        sync::connect(format!("ws://127.0.0.1:{port}/"))
            .no_proxy()
            .open_timeout(Some(Duration::from_secs(2)))
            .open()
    })
    .await;
    assert!(plain.is_err());
    // Without the CA, the certificate is refused: a TLS error, not retried.
    let error = blocking(move || {
        sync::connect(format!("wss://localhost:{port}/"))
            .no_proxy()
            .open()
            .unwrap_err()
    })
    .await;
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
    assert!(!error.is_transient());
    sync_server.close();
    blocking(move || sync_server.wait_closed()).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_sockets_both_ways() {
    let dir = crate::example_support::TempDir::new();
    let path = dir.0.join("ws.sock");
    let server = sync::unix_serve(sync_echo, &path).start().unwrap();
    let client_path = path.clone();
    blocking(move || {
        let ws = sync::unix_connect(client_path, "ws://localhost/chat")
            .open()
            .unwrap();
        assert_eq!(ws.path(), "/chat");
        round_trip(&ws);
    })
    .await;
    // The async client on the blocking server's socket.
    let ws = wskit::unix_connect(&path, "ws://localhost/").await.unwrap();
    ws.send("async").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "async");
    server.close();
    blocking(move || server.wait_closed()).await;
    assert!(!path.exists(), "the socket file is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_tinyproxy_and_microsocks() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let target = format!("ws://{}/", server.local_addr().unwrap());
    let Some(http) = crate::proxy::tinyproxy(None).await else {
        return;
    };
    let Some(socks) = crate::proxy::microsocks("user", "pass").await else {
        return;
    };
    for proxy in [
        format!("http://{}", http.addr),
        format!("socks5://user:pass@{}", socks.addr),
        format!("socks5h://user:pass@{}", socks.addr),
    ] {
        let target = target.clone();
        blocking(move || {
            let ws = sync::connect(target).proxy(&proxy).open().unwrap();
            ws.send("through the proxy").unwrap();
            assert_eq!(ws.recv().unwrap(), "through the proxy", "{proxy}");
        })
        .await;
    }
    // Wrong SOCKS5 credentials: refused, not retried.
    let socks_addr = socks.addr;
    let error = blocking(move || {
        sync::connect(target)
            .proxy(format!("socks5://user:wrong@{socks_addr}"))
            .open()
            .unwrap_err()
    })
    .await;
    assert!(matches!(error, Error::Proxy(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_proxies_get_typed_errors_within_open_timeout() {
    for (answer, check) in [
        (
            Some(&b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..]),
            (|e: &Error| matches!(e, Error::Proxy(ProxyError::Status(407)))) as fn(&Error) -> bool,
        ),
        (Some(&b"garbage\r\n\r\n"[..]), |e: &Error| {
            matches!(e, Error::Proxy(_))
        }),
        (None, |e: &Error| {
            matches!(e, Error::Proxy(ProxyError::Closed))
        }),
        (Some(&b""[..]), |e: &Error| matches!(e, Error::Timeout(_))),
    ] {
        let proxy = crate::proxy::hostile(answer).await;
        let error = blocking(move || {
            let start = Instant::now();
            let error = sync::connect("ws://example.invalid/")
                .proxy(format!("http://{proxy}"))
                .open_timeout(Some(Duration::from_millis(500)))
                .open()
                .unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(5), "{error}");
            error
        })
        .await;
        assert!(check(&error), "{answer:?}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_from_many_threads_never_interleave() {
    // The async server echoes; the blocking client sends from four threads at once, large
    // compressed messages whose frames take many writes, while a fifth thread receives.
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_size(Some(1 << 20))
        .await
        .unwrap();
    let uri = format!("ws://{}/", server.local_addr().unwrap());
    blocking(move || {
        let ws = Arc::new(sync::connect(uri).no_proxy().open().unwrap());
        assert!(ws.is_compressed());
        const PER_THREAD: usize = 40;
        let receiver = {
            let ws = Arc::clone(&ws);
            std::thread::spawn(move || {
                let mut next = [0usize; 4];
                for _ in 0..4 * PER_THREAD {
                    let message = ws.recv().unwrap();
                    let text = message.as_text().unwrap();
                    let (head, body) = text.split_once(':').unwrap();
                    let (thread, n) = head.split_once('/').unwrap();
                    let (thread, n): (usize, usize) = (thread.parse().unwrap(), n.parse().unwrap());
                    assert_eq!(n, next[thread], "messages of one thread stay in order");
                    next[thread] += 1;
                    assert!(
                        body.bytes().all(|b| b == b'a' + thread as u8),
                        "not interleaved"
                    );
                    assert_eq!(body.len(), 20_000 + n);
                }
            })
        };
        let senders: Vec<_> = (0..4)
            .map(|thread| {
                let ws = Arc::clone(&ws);
                std::thread::spawn(move || {
                    for n in 0..PER_THREAD {
                        // Random-looking enough not to compress to nothing: a run, but long.
                        let body = String::from(char::from(b'a' + thread as u8)).repeat(20_000 + n);
                        ws.send(format!("{thread}/{n}:{body}")).unwrap();
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().unwrap();
        }
        receiver.join().unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_timeout_iteration_and_a_cut_connection() {
    let server = wskit::serve(
        |ws: wskit::Connection| async move {
            let _ = ws.recv().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = ws.send("late").await;
            let _ = ws.send("later").await;
            // Abort drops what is not written yet: let it go out first.
            tokio::time::sleep(Duration::from_millis(100)).await;
            ws.abort();
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let uri = format!("ws://{}/", server.local_addr().unwrap());
    blocking(move || {
        let ws = sync::connect(uri).no_proxy().open().unwrap();
        ws.send("go").unwrap();
        let start = Instant::now();
        assert_eq!(ws.recv_timeout(Duration::from_millis(50)).unwrap(), None);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // Nothing lost: the late message comes to the next call.
        let message = ws.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(message.as_ref().map(Message::as_text), Some(Ok("late")));
        // Iteration: the rest, then one error for the abnormal end (1006), then nothing.
        let mut messages = ws.messages();
        assert_eq!(messages.next().unwrap().unwrap(), "later");
        let error = messages.next().unwrap().unwrap_err();
        assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL), "{error}");
        assert!(messages.next().is_none());
        // After the end, every call says how it ended.
        assert!(matches!(ws.recv(), Err(Error::ConnectionClosed(_))));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_at_a_time() {
    let server = wskit::serve(crate::support::idle, "127.0.0.1:0")
        .await
        .unwrap();
    let uri = format!("ws://{}/", server.local_addr().unwrap());
    blocking(move || {
        let ws = Arc::new(sync::connect(uri).no_proxy().open().unwrap());
        let waiting = {
            let ws = Arc::clone(&ws);
            std::thread::spawn(move || ws.recv())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(ws.recv(), Err(Error::Concurrency(_))));
        ws.close(CloseCode::NORMAL, "").unwrap();
        let error = waiting.join().unwrap().unwrap_err();
        assert!(error.is_closed_ok(), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_open_connection() {
    let server = sync::serve(
        |ws: Connection| {
            while ws.recv().is_ok() {}
        },
        "127.0.0.1:0",
    )
    .start()
    .unwrap();
    let uri = format!("ws://{}/", server.local_addr().unwrap());
    let report = blocking(move || {
        let clients: Vec<Connection> = (0..3)
            .map(|_| sync::connect(uri.clone()).no_proxy().open().unwrap())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.connections().len() < 3 {
            assert!(Instant::now() < deadline, "the server sees its connections");
            std::thread::sleep(Duration::from_millis(10));
        }
        let connections = server.connections();
        // One is closed first: skipped and reported.
        connections[0].close(CloseCode::NORMAL, "").unwrap();
        let report = sync::broadcast(&connections, "news");
        let received = clients
            .iter()
            .filter(|ws| {
                ws.recv_timeout(Duration::from_secs(2))
                    .ok()
                    .flatten()
                    .is_some()
            })
            .count();
        server.close();
        server.wait_closed();
        (report.sent, report.skipped.len(), received)
    })
    .await;
    assert_eq!(report, (2, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconnecting_client_waits_for_the_server() {
    let addr = crate::support::free_addr();
    let attempts = Arc::new(AtomicUsize::new(0));
    let uri = format!("ws://{addr}/");
    let client = {
        let attempts = Arc::clone(&attempts);
        tokio::task::spawn_blocking(move || {
            let mut backoff = Backoff::default();
            backoff.initial = Duration::from_millis(50);
            backoff.min = Duration::from_millis(50);
            backoff.max = Duration::from_millis(100);
            let mut connections = sync::connect(uri)
                .no_proxy()
                .backoff(backoff)
                .reconnecting();
            let ws = connections.next().unwrap();
            attempts.store(1, Ordering::SeqCst);
            ws.send("back").unwrap();
            ws.recv().unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 0, "no server yet");
    let server = sync::serve(sync_echo, addr).start().unwrap();
    assert_eq!(within(client).await.unwrap(), "back");
    server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_process_response_and_typed_data() {
    #[derive(Debug)]
    struct Seen(&'static str);
    let server = sync::serve(
        |ws: Connection| {
            let seen = ws.data::<Seen>().map(|s| s.0).unwrap_or("none");
            ws.send(format!("{} {seen}", ws.username().unwrap_or("?")))
        },
        "127.0.0.1:0",
    )
    .basic_auth(
        BasicAuth::new("test")
            .check_async(|user, password| async move { user == "alice" && password == "secret" }),
    )
    .process_request(|handshake, _| {
        handshake.insert(Seen("hooked"));
        None
    })
    .process_response(|_, response| response.headers.append("X-Seen", "yes"))
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    blocking(move || {
        let ws = sync::connect(format!("ws://alice:secret@{addr}/"))
            .no_proxy()
            .open()
            .unwrap();
        assert_eq!(ws.response().unwrap().headers.get("X-Seen"), Some("yes"));
        assert_eq!(ws.recv().unwrap(), "alice hooked");
        match sync::connect(format!("ws://alice:wrong@{addr}/"))
            .no_proxy()
            .open()
        {
            Err(Error::InvalidStatus(response)) => {
                assert_eq!(response.status, 401);
                assert!(response.headers.get("WWW-Authenticate").is_some());
                assert_eq!(response.headers.get("X-Seen"), Some("yes"));
            }
            other => panic!("{other:?}"),
        }
        server.close();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_timeout_bounds_a_silent_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let (error, elapsed) = blocking(move || {
        let start = Instant::now();
        let error = sync::connect(format!("ws://{addr}/"))
            .no_proxy()
            .open_timeout(Some(Duration::from_millis(300)))
            .open()
            .unwrap_err();
        (error, start.elapsed())
    })
    .await;
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    hold.abort();
    // And a server whose client never sends its request drops it after open_timeout, while
    // it keeps serving others.
    let server = sync::serve(sync_echo, "127.0.0.1:0")
        .open_timeout(Some(Duration::from_millis(300)))
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let uri = format!("ws://{addr}/");
    blocking(move || {
        let ws = sync::connect(uri).no_proxy().open().unwrap();
        ws.send("served").unwrap();
        assert_eq!(ws.recv().unwrap(), "served");
    })
    .await;
    let mut buf = [0u8; 16];
    let read = within(tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_routes_with_typed_parameters_and_refuses_the_rest() {
    let router = sync::Router::new()
        .route("/rooms/{room}", |ws: Connection| {
            let room = ws.params().get("room").unwrap_or_default().to_owned();
            ws.send(format!("room {room}"))
        })
        .route("/users/{id}", |ws: Connection| {
            let id: u64 = ws.params().parse("id").expect("checked by the router");
            ws.send(format!("user {id}"))
        })
        .param::<u64>("id");
    let server = sync::route(router, "127.0.0.1:0").start().unwrap();
    let addr = server.local_addr().unwrap();
    blocking(move || {
        for (path, answer) in [("/rooms/caf%C3%A9", "room café"), ("/users/42", "user 42")] {
            let ws = sync::connect(format!("ws://{addr}{path}"))
                .no_proxy()
                .open()
                .unwrap();
            assert_eq!(ws.recv().unwrap(), answer, "{path}");
        }
        for (path, status) in [("/users/abc", 404), ("/nowhere", 404), ("/rooms/%FF", 400)] {
            match sync::connect(format!("ws://{addr}{path}"))
                .no_proxy()
                .open()
            {
                Err(Error::InvalidStatus(response)) => {
                    assert_eq!(response.status, status, "{path}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        server.close();
        server.wait_closed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_stall_broadcasts() {
    let server = sync::serve(
        |ws: Connection| {
            while ws.recv().is_ok() {}
        },
        "127.0.0.1:0",
    )
    .no_compression()
    // Room for a reading client to be a few messages behind; a client that reads nothing
    // reaches the mark.
    .write_limit(4 << 20)
    .start()
    .unwrap();
    let addr = server.local_addr().unwrap();
    // A client that completes the handshake and never reads again, and one that reads.
    let (slow, _) = crate::raw::raw_connect(addr, "/").await;
    let uri = format!("ws://{addr}/");
    let (sent_to_slow, received) = blocking(move || {
        let fast = sync::connect(uri)
            .no_proxy()
            .no_compression()
            .open()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.connections().len() < 2 {
            assert!(Instant::now() < deadline, "the server sees its connections");
            std::thread::sleep(Duration::from_millis(10));
        }
        let connections = server.connections();
        let slow_side: Vec<Connection> = connections
            .iter()
            .filter(|c| c.id() == connections.iter().map(Connection::id).min().unwrap())
            .cloned()
            .collect();
        // 200 broadcasts of 64 KiB to the client that does not read: 12.5 MiB, far more than
        // its socket takes. A second at most is spent on its full socket; then it is skipped.
        let message = vec![b'x'; 64 << 10];
        let start = Instant::now();
        let mut sent_to_slow = 0;
        for _ in 0..200 {
            sent_to_slow += sync::broadcast(&slow_side, message.clone()).sent;
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
        // Then to both: the reading client gets every message.
        let reader = std::thread::spawn(move || {
            let mut received = 0;
            while let Ok(Some(_)) = fast.recv_timeout(Duration::from_secs(5)) {
                received += 1;
                if received == 50 {
                    break;
                }
            }
            received
        });
        let small = vec![b'y'; 16 << 10];
        for _ in 0..50 {
            let report = sync::broadcast(&connections, small.clone());
            assert!(report.sent >= 1, "{report:?}");
        }
        let received = reader.join().unwrap();
        // Closing does not wait for the client that does not read either.
        let closing = Instant::now();
        server.close();
        assert!(
            closing.elapsed() < Duration::from_secs(1),
            "{:?}",
            closing.elapsed()
        );
        (sent_to_slow, received)
    })
    .await;
    assert_eq!(received, 50, "the reading client got every message");
    assert!(
        sent_to_slow < 200,
        "the slow client was skipped ({sent_to_slow})"
    );
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sending_handler_does_not_stop_its_connection_from_reading() {
    // The handler sends as fast as it can; the client's pings, and then its close, must still
    // be read and answered (the reader thread never writes for long).
    let server = sync::serve(
        |ws: Connection| {
            let payload = "y".repeat(100);
            while ws.send(payload.as_str()).is_ok() {}
        },
        "127.0.0.1:0",
    )
    .no_compression()
    .start()
    .unwrap();
    let ws = wskit::connect(format!("ws://{}/", server.local_addr().unwrap()))
        .no_proxy()
        .await
        .unwrap();
    let reader = {
        let ws = ws.clone();
        tokio::spawn(async move {
            let mut count = 0u64;
            while ws.recv().await.is_ok() {
                count += 1;
            }
            count
        })
    };
    for _ in 0..5 {
        let latency = within(ws.ping("").await.unwrap()).await.unwrap();
        assert!(latency < Duration::from_secs(5), "{latency:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    within(ws.close(CloseCode::NORMAL, "enough")).await.unwrap();
    let closed = within(ws.wait_closed()).await;
    assert!(closed.is_ok(), "{closed}");
    assert!(within(reader).await.unwrap() > 0);
    server.close();
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_timeout_bounds_a_tls_handshake_that_trickles() {
    let cert = crate::tls::TestCert::new(&["localhost"]);
    let server = sync::serve(sync_echo, "127.0.0.1:0")
        .tls(cert.server_tls())
        .open_timeout(Some(Duration::from_millis(500)))
        .start()
        .unwrap();
    let addr = server.local_addr().unwrap();
    // A client that sends the start of a TLS hello one byte every 100 ms, never finishing.
    let start = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let hello = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut closed_after = None;
    for byte in hello.iter().cycle().take(60) {
        use tokio::io::AsyncWriteExt;
        if stream.write_all(&[*byte]).await.is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = closed_after.expect("the server keeps a trickling client for 6 s");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_of_fragments_and_a_timeout_too_long_to_be_a_date() {
    let server = wskit::serve(crate::support::idle, "127.0.0.1:0")
        .await
        .unwrap();
    let uri = format!("ws://{}/", server.local_addr().unwrap());
    blocking(move || {
        let ws = Arc::new(sync::connect(uri).no_proxy().open().unwrap());
        let waiting = {
            let ws = Arc::clone(&ws);
            std::thread::spawn(move || ws.recv_timeout(Duration::MAX))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(ws.recv_fragment(), Err(Error::Concurrency(_))));
        ws.close(CloseCode::NORMAL, "").unwrap();
        let error = waiting.join().unwrap().unwrap_err();
        assert!(error.is_closed_ok(), "{error}");
    })
    .await;
}
