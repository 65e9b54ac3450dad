//! The router (`wskit::route`, `unix_route`, `Accept::router`) and HTTP Basic authentication,
//! over real sockets: matches, typed and percent-decoded parameters, 404 and 400, the order of
//! `process_request`, routing, authentication, and the username and parameters in the handler.

use std::time::Duration;

use wskit::{BasicAuth, CloseCode, Connection, Response, Router, Username};

use crate::raw::{header, http_exchange, status};
use crate::support::within;

async fn room(ws: Connection) -> wskit::Result<()> {
    let name = ws.params().get("room").unwrap().to_owned();
    let user = ws.username().unwrap_or("nobody").to_owned();
    while let Some(message) = ws.clone().next().await {
        ws.send(format!("{user}@{name}: {}", message?)).await?;
    }
    Ok(())
}

async fn user(ws: Connection) -> wskit::Result<()> {
    let id: u64 = ws.params().parse("id").expect("the route asked for a u64");
    ws.send(format!("user {id}")).await
}

fn router() -> Router {
    Router::new()
        .route("/rooms/{room}", room)
        .route("/users/{id}", user)
        .param::<u64>("id")
        .route("/fails", |_ws: Connection| async {
            Err::<(), _>("handler failed")
        })
}

/// An upgrade request for `path`, as raw HTTP.
fn upgrade(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn routes_match_paths_with_decoded_and_typed_parameters() {
    let server = within(
        wskit::route(router(), "127.0.0.1:0").process_request(|_, request| {
            // process_request runs before the routes: it answers paths they do not have.
            (request.path == "/healthz").then(|| Response::new(200, "OK\n"))
        }),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();

    let ws = within(wskit::connect(format!(
        "ws://{addr}/rooms/caf%C3%A9?ignored=1"
    )))
    .await
    .unwrap();
    ws.send("hi").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "nobody@café: hi");
    let ws = within(wskit::connect(format!("ws://{addr}/users/42")))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "user 42");
    // A handler's error closes its connection with 1011, as with serve.
    let ws = within(wskit::connect(format!("ws://{addr}/fails")))
        .await
        .unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));

    for (path, expected) in [
        ("/", 404),
        ("/rooms", 404),
        ("/rooms/a/b", 404),
        ("/users/alice", 404),
        ("/users/-3", 404),
        ("/users/123456789012345678901234567890", 404),
        ("/rooms/%zz", 400),
        ("/rooms/%C3%28", 400),
        ("/healthz", 200),
    ] {
        let (head, _) = http_exchange(addr, &upgrade(path)).await;
        assert_eq!(status(&head), expected, "{path}: {head}");
        let error = within(wskit::connect(format!("ws://{addr}{path}")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, wskit::Error::InvalidStatus(ref r) if r.status == expected),
            "{path}: {error:?}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn routes_on_a_unix_socket_and_on_a_stream() {
    let dir = crate::example_support::TempDir::new();
    let path = dir.0.join("routes.sock");
    let server = within(wskit::unix_route(router(), &path)).await.unwrap();
    let ws = within(wskit::unix_connect(&path, "ws://localhost/users/7"))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "user 7");
    let error = within(wskit::unix_connect(&path, "ws://localhost/nowhere"))
        .await
        .unwrap_err();
    assert!(matches!(error, wskit::Error::InvalidStatus(ref r) if r.status == 404));
    server.close();

    // On a stream: the handshake matches, the router runs the route's handler.
    let router = std::sync::Arc::new(router());
    for (path, result) in [
        ("/rooms/lobby", Ok("nobody@lobby: x")),
        ("/other", Err(404)),
    ] {
        let (client_side, server_side) = tokio::io::duplex(4096);
        let accepting = {
            let router = std::sync::Arc::clone(&router);
            tokio::spawn(async move {
                let ws = wskit::accept(server_side).router(&router).await?;
                router.handle(ws).await;
                Ok::<_, wskit::Error>(())
            })
        };
        let client =
            within(wskit::connect(format!("ws://localhost{path}")).over(client_side)).await;
        match result {
            Ok(reply) => {
                let ws = client.unwrap();
                ws.send("x").await.unwrap();
                assert_eq!(within(ws.recv()).await.unwrap(), reply);
                ws.close(CloseCode::NORMAL, "").await.unwrap();
                within(accepting).await.unwrap().unwrap();
            }
            Err(expected) => {
                assert!(
                    matches!(client, Err(wskit::Error::InvalidStatus(ref r)) if r.status == expected)
                );
                assert!(within(accepting).await.unwrap().is_err());
            }
        }
    }
}

#[tokio::test]
async fn basic_auth_guards_handshakes_and_pages_and_names_the_user() {
    let server = within(
        wskit::route(router(), "127.0.0.1:0")
            .basic_auth(BasicAuth::new("rooms").credentials([("alice", "s3cret"), ("bob", "pw")]))
            .process_request(|handshake, request| {
                // After the authentication: the page is in the realm, and knows the user.
                (request.path == "/").then(|| {
                    let user = &handshake.get::<Username>().unwrap().0;
                    Response::new(200, format!("page for {user}\n"))
                })
            }),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://alice:s3cret@{addr}/rooms/a")))
        .await
        .unwrap();
    ws.send("hello").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "alice@a: hello");

    for credentials in ["", "alice:wrong@", "carol:s3cret@", "bob:s3cret@"] {
        let error = within(wskit::connect(format!("ws://{credentials}{addr}/rooms/a")))
            .await
            .unwrap_err();
        let wskit::Error::InvalidStatus(response) = error else {
            panic!("{credentials}: {error:?}")
        };
        assert_eq!(response.status, 401, "{credentials}");
        assert_eq!(
            response.headers.get("WWW-Authenticate"),
            Some("Basic realm=\"rooms\", charset=\"UTF-8\"")
        );
    }
    // The page: 401 without credentials (before the routes' 404 and process_request's page).
    let page = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (head, _) = http_exchange(addr, page).await;
    assert_eq!(status(&head), 401, "{head}");
    assert!(header(&head, "WWW-Authenticate").is_some());
    let page = b"GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic Ym9iOnB3\r\n\r\n";
    let (head, body) = http_exchange(addr, page).await;
    assert_eq!((status(&head), &body[..]), (200, &b"page for bob\n"[..]));
}

#[tokio::test]
async fn an_async_check_runs_during_the_handshake() {
    let server = within(
        wskit::serve(
            |ws: Connection| async move {
                let user = ws.username().unwrap().to_owned();
                ws.send(user).await
            },
            "127.0.0.1:0",
        )
        .basic_auth(
            BasicAuth::new("db").check_async(|user, password| async move {
                // A look-up that takes a while.
                tokio::time::sleep(Duration::from_millis(20)).await;
                user == "carol" && password == "from-the-db"
            }),
        ),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://carol:from-the-db@{addr}/")))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "carol");
    let error = within(wskit::connect(format!("ws://carol:guess@{addr}/")))
        .await
        .unwrap_err();
    assert!(matches!(error, wskit::Error::InvalidStatus(ref r) if r.status == 401));
}
