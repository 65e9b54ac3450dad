//! `broadcast`: one message to many connections, skipping the slow and the closed.

use std::time::Duration;

use wskit::{CloseCode, Connection, Message};

use crate::support::{eventually, uri, within};

/// A server whose handlers wait until the connection closes, so that the test broadcasts.
async fn idle(ws: Connection) -> wskit::Result<()> {
    ws.wait_closed().await;
    Ok(())
}

#[tokio::test]
async fn reaches_every_open_connection() {
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let plain = within(wskit::connect(uri(&server, "/")).no_compression())
        .await
        .unwrap();
    let compressed = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let closed = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    within(closed.close(CloseCode::NORMAL, "")).await.unwrap();
    within(async {
        while server.connections().len() != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let report = wskit::broadcast(&server.connections(), "to everyone");
    assert_eq!(report.sent, 2);
    assert!(report.skipped.is_empty());
    for ws in [&plain, &compressed] {
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from("to everyone")
        );
    }
    let report = wskit::broadcast(&server.connections(), vec![0u8, 1, 2]);
    assert_eq!(report.sent, 2);
    for ws in [&plain, &compressed] {
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from(vec![0u8, 1, 2])
        );
    }
}

#[tokio::test]
async fn skips_closed_and_slow_connections() {
    let server = wskit::serve(idle, "127.0.0.1:0")
        .write_limit(16 << 10)
        .await
        .unwrap();
    // A client that never reads, with a small receive queue, stops reading its socket; the
    // server's buffer then fills up.
    let slow = within(
        wskit::connect(uri(&server, "/"))
            .no_compression()
            .max_queue(1),
    )
    .await
    .unwrap();
    let fast = within(wskit::connect(uri(&server, "/")).no_compression())
        .await
        .unwrap();
    within(async {
        while server.connections().len() != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let connections = server.connections();
    let payload = vec![7u8; 64 << 10];
    let mut skipped_slow = false;
    for _ in 0..500 {
        let report = wskit::broadcast(&connections, payload.clone());
        // The fast client keeps up.
        within(fast.recv()).await.unwrap();
        if report
            .skipped
            .iter()
            .any(|c| c.remote_addr() == slow.local_addr())
        {
            skipped_slow = true;
            break;
        }
    }
    assert!(
        skipped_slow,
        "a client that does not read is skipped once its buffer is full"
    );
    // A closed connection is skipped too.
    let closed_server_side: Vec<_> = connections.clone();
    within(fast.close(CloseCode::NORMAL, "")).await.unwrap();
    within(async {
        while closed_server_side.iter().filter(|c| c.is_open()).count() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let report = wskit::broadcast(&closed_server_side, "late");
    assert!(
        report
            .skipped
            .iter()
            .any(|c| c.remote_addr() == fast.local_addr())
    );
    drop(slow);
}

#[tokio::test]
async fn reaches_a_thousand_connections() {
    const CLIENTS: usize = 1000;
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let uri = uri(&server, "/");
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        // Without compression the message is framed once for all of them.
        clients.push(
            within(wskit::connect(&uri).no_compression().ping_interval(None))
                .await
                .unwrap(),
        );
    }
    within(async {
        while server.connections().len() != CLIENTS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let report = wskit::broadcast(&server.connections(), "news for everyone");
    assert_eq!((report.sent, report.skipped.len()), (CLIENTS, 0));
    for ws in &clients {
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from("news for everyone")
        );
    }
}

#[tokio::test]
async fn a_connection_set_lets_go_of_closed_connections_however_the_handler_ended() {
    // The seeds' relay chat, whose handler leaves with `?`: with a plain set it leaked the
    // clients that left.
    async fn relay(ws: Connection, clients: wskit::ConnectionSet) -> wskit::Result<()> {
        assert!(clients.insert(&ws));
        assert!(!clients.insert(&ws), "already in the set");
        loop {
            let message = ws.recv().await?; // leaves on any close, as the seeds do
            let others = clients.connections();
            wskit::broadcast(others.iter().filter(|c| **c != ws), message);
        }
    }
    let clients = wskit::ConnectionSet::new();
    let members = clients.clone();
    let server = wskit::serve(move |ws| relay(ws, members.clone()), "127.0.0.1:0")
        .await
        .unwrap();
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(within(wskit::connect(uri(&server, "/"))).await.unwrap());
    }
    eventually("three members", || clients.len() == 3).await;
    peers[0].send("hello").await.unwrap();
    assert_eq!(within(peers[1].recv()).await.unwrap(), "hello");
    assert_eq!(within(peers[2].recv()).await.unwrap(), "hello");
    // One leaves normally, one drops its TCP connection: both leave the set.
    let leaving = peers.remove(0);
    within(leaving.close(CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    drop(peers.remove(0));
    eventually("one member left", || clients.len() == 1).await;
    let report = clients.broadcast("to the last one");
    assert_eq!((report.sent, report.skipped.len()), (1, 0));
    assert_eq!(within(peers[0].recv()).await.unwrap(), "to the last one");
    // A closed connection is never added.
    let closed = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    within(closed.close(CloseCode::NORMAL, "")).await.unwrap();
    assert!(!clients.insert(&closed));
    assert!(!clients.contains(&closed));
}
