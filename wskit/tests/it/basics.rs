//! The basics: connect, send and receive both ways, close.

use wskit::{CloseCode, Message};

use crate::support::{echo, uri, within};

#[tokio::test]
async fn echo_text_and_binary() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("Hello!").await.unwrap();
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("Hello!"));
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from(vec![1u8, 2, 3])
    );
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    assert!(
        within(ws.next()).await.is_none(),
        "a normal close ends the iteration"
    );
    let closed = ws.wait_closed().await;
    assert!(closed.is_ok(), "{closed}");
    server.close();
    within(server.wait_closed()).await;
}
