//! Connections: the [`Connection`] handle that applications use, and the driver task that moves
//! bytes between the socket and the protocol state machine.
//!
//! # Design
//!
//! Each connection has one driver, a future that owns the transport. It reads whatever the
//! socket has, feeds it to [`wskit_proto::Protocol`], queues the messages, answers pings and
//! close frames (even while the application is not calling `recv`), sends keepalive pings, and
//! writes everything that is waiting with as few system calls as it can: messages sent while it
//! was busy go out together in one write. The handle and the driver share the protocol behind a
//! mutex that is only held for short, non-blocking sections.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, oneshot};
use tokio::time::{Instant, Sleep};
use wskit_proto::connection::Fragment;
use wskit_proto::{CloseCode, Event, Message, Output, Protocol, Role, State};

use crate::error::{Closed, Error, Result};
use wskit_proto::session::{PingError, PingWaiter, Session};

pub use wskit_proto::session::ConnectionConfig;

/// An open WebSocket connection, client or server side.
///
/// Cheap to clone: clones are handles to the same connection, so one task can receive while
/// others send (sends from several tasks never interleave frames of two messages). The
/// connection closes with 1000 when the last handle is dropped, if it is still open.
///
/// Received messages are queued until [`recv`](Self::recv) takes them; pings are answered and
/// close frames processed in the background, whether or not anyone is receiving.
pub struct Connection {
    shared: Arc<Shared>,
}

pub use crate::addr::PeerAddr;

pub(crate) use crate::data::ConnectionInfo;

struct Shared {
    id: u64,
    role: Role,
    subprotocol: Option<String>,
    info: ConnectionInfo,
    handles: AtomicUsize,
    /// Set once the driver finished (the transport is closed), readable without the lock.
    finished: AtomicBool,
    inner: Mutex<Inner>,
    /// The write buffer drained below the low mark, a fragmented send ended, or the
    /// connection closed.
    write_ready: Notify,
}

struct Inner {
    /// The protocol, the receive queue, pings, deadlines: the runtime-free part.
    session: Session<PongSender>,
    receiving: bool,
    /// The protocol's input buffer is (a view of) a large buffer, to let go of once empty: see
    /// [`Io::poll_read`].
    large_input: bool,
    recv_waker: Option<Waker>,
    driver_waker: Option<Waker>,
    /// Something was read or written since the last [`Connection::release_if_idle`].
    active: bool,
    /// The driver's write buffer holds memory (as of its last write).
    out_held: bool,
    /// [`Connection::release_if_idle`] asks the driver to let go of its write buffer, if empty.
    release_out: bool,
    /// [`Connection::abort`] was called: the driver drops what it was writing and closes the
    /// transport.
    aborted: bool,
}

impl Inner {
    #[inline]
    fn state(&self) -> State {
        self.session.protocol().state()
    }

    /// Let go of the buffers that hold nothing: the protocol's (read, write, compression,
    /// events) and the receive and ping queues.
    fn release_empty_buffers(&mut self) {
        self.session.release_buffers();
        if self.session.protocol_mut().input_buffer().capacity() == 0 {
            self.large_input = false;
        }
    }
}

/// What waits for the pong of [`Connection::ping`].
struct PongSender(oneshot::Sender<Duration>);

impl PingWaiter for PongSender {
    fn answered(self, latency: Duration) {
        let _ = self.0.send(latency);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// ===== impl Connection =====

impl Connection {
    /// Wrap an open protocol and its transport: returns the handle and the driver future, which
    /// must be polled (spawned, or joined with the handler) for the connection to work.
    pub(crate) fn open<S>(
        protocol: Protocol,
        stream: S,
        config: impl Into<Arc<ConnectionConfig>>,
        info: ConnectionInfo,
    ) -> (Self, Driver<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Frames that arrived right behind the handshake were parsed with it: the peer may
        // already have closed.
        debug_assert!(matches!(protocol.state(), State::Open | State::Closing));
        // The handshake's buffers are not needed any more; an idle connection keeps none.
        let mut protocol = protocol;
        protocol.release_buffers();
        // The handshake is kept for the connection's life: without spare capacity.
        let mut info = info;
        if let Some(request) = &mut info.request {
            request.path.shrink_to_fit();
            request.headers.shrink_to_fit();
        }
        if let Some(response) = &mut info.response {
            response.headers.shrink_to_fit();
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let config = config.into();
        let role = protocol.role();
        let subprotocol = protocol.subprotocol().map(str::to_owned);
        let session = Session::new(protocol, config, now_std());
        let shared = Arc::new(Shared {
            id,
            role,
            subprotocol,
            info,
            handles: AtomicUsize::new(1),
            finished: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                session,
                receiving: false,
                large_input: false,
                recv_waker: None,
                driver_waker: None,
                aborted: false,
                active: false,
                out_held: false,
                release_out: false,
            }),
            write_ready: Notify::new(),
        });
        tracing::debug!(id, role = ?shared.role, remote = ?shared.info.remote_addr, "connection open");
        let driver = Driver::new(Arc::clone(&shared), stream);
        (Self { shared }, driver)
    }

    /// Receive the next message.
    ///
    /// Text arrives as validated UTF-8 ([`Message::Text`]), binary as [`Bytes`]
    /// ([`Message::Binary`]). Messages received before the connection closed are delivered
    /// first.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] once the connection is closed and every message received
    /// before has been taken ([`Error::is_closed_ok`] tells a normal closure), and
    /// [`Error::Concurrency`] if another task is already receiving.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: if it is dropped before it completes (in `tokio::select!`
    /// or under a timeout), no message is lost; the next call returns it.
    pub fn recv(&self) -> impl Future<Output = Result<Message>> + Send + '_ {
        Recv::new(self)
    }

    /// Receive the next message, or `None` once the connection closed normally (1000 or 1001
    /// both ways): the loop `while let Some(message) = ws.next().await` ends quietly then.
    ///
    /// # Errors
    ///
    /// `Some(Err(..))` when the connection closed abnormally, with the close details.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe, like [`recv`](Self::recv).
    #[allow(clippy::should_implement_trait)] // an async `next`, as on streams
    pub fn next(&mut self) -> impl Future<Output = Option<Result<Message>>> + Send + '_ {
        let mut recv = Recv::new(self);
        poll_fn(move |cx| {
            Poll::Ready(match ready!(Pin::new(&mut recv).poll(cx)) {
                Ok(message) => Some(Ok(message)),
                Err(error) if error.is_closed_ok() => None,
                Err(error) => Some(Err(error)),
            })
        })
    }

    /// Poll for the next message: the building block of [`recv`](Self::recv) and of the
    /// [`Stream`] implementation. Only the last task to poll is woken.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        self.poll_recv_locked(&mut self.shared.lock(), cx)
    }

    fn poll_recv_locked(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Message>> {
        if let Some(result) = self.try_recv_message(inner, cx.waker()) {
            return Poll::Ready(result);
        }
        match &inner.recv_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.recv_waker = Some(cx.waker().clone()),
        }
        if inner.session.protocol().pending_failure().is_some() {
            // The application took every message before the peer's error: fail now.
            self.shared.wake_driver(inner);
        }
        Poll::Pending
    }

    /// Receive the next piece of a message as it arrives, without waiting for the whole
    /// message: the way to stream a large fragmented message. Pieces of compressed messages
    /// are inflated. Do not mix with [`recv`](Self::recv) in the middle of a message.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    pub async fn recv_fragment(&self) -> Result<Fragment> {
        let _guard = self.start_receiving()?;
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if let Some(fragment) = inner.session.pop_fragment() {
                self.after_dequeue(&mut inner, cx.waker());
                return Poll::Ready(Ok(fragment));
            }
            if let Some(closed) = inner.session.closed() {
                return Poll::Ready(Err(Error::ConnectionClosed(Box::new(Closed::clone(
                    closed,
                )))));
            }
            inner.recv_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Send a message: anything that converts into [`Message`] (`&str`, `String`, `Bytes`,
    /// `Vec<u8>`, `&[u8]`...). Text goes as a text message, bytes as a binary one.
    ///
    /// The message is queued at once; if the write buffer is then above the high mark
    /// (`write_limit`), this waits until it drains to the low mark. Messages from concurrent
    /// calls never interleave.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is closing or closed.
    ///
    /// # Cancel safety
    ///
    /// If dropped before it completes, the message may or may not have been queued; once
    /// queued it is sent.
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<()>> + Send + '_ {
        SendMessage {
            connection: self,
            state: SendState::Start(message.into()),
        }
    }

    /// Send `message` once the fragmented message being sent by another call is finished.
    async fn send_after_fragmented(&self, message: Message) -> Result<()> {
        loop {
            let notified = self.shared.write_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.shared.lock();
                if inner.session.fragmented_sender().is_none() {
                    if let Err(error) = inner.session.protocol_mut().send_message(&message) {
                        return Err(self.send_error(&inner, error));
                    }
                    self.shared.wake_driver(&mut inner);
                    break;
                }
                if inner.session.closed().is_some() {
                    return Err(Error::ConnectionClosed(Box::new(
                        inner.session.closed_so_far(),
                    )));
                }
            }
            notified.await;
        }
        self.drain().await
    }

    /// Send one message in fragments, from an iterator of chunks, all text or all binary
    /// (the type of the first chunk). Other sends wait until the last fragment is queued.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection closes meanwhile, and
    /// [`Error::InvalidState`] if the chunks mix text and binary.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping it in the middle leaves the message unfinished, and the
    /// connection is then failed with 1011 so that the peer does not wait forever.
    pub async fn send_fragments<I>(&self, chunks: I) -> Result<()>
    where
        I: IntoIterator,
        I::IntoIter: Unpin,
        I::Item: Into<Message>,
    {
        self.send_fragment_stream(IterStream(chunks.into_iter()))
            .await
    }

    /// Send one message in fragments, from a [`Stream`] of chunks produced as the message is
    /// sent (a file being read, a computation): as
    /// [`send_fragments`](Self::send_fragments), but each chunk is awaited.
    ///
    /// # Errors
    ///
    /// As [`send_fragments`](Self::send_fragments).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`send_fragments`](Self::send_fragments).
    pub async fn send_fragment_stream<S>(&self, mut chunks: S) -> Result<()>
    where
        S: Stream + Unpin,
        S::Item: Into<Message>,
    {
        let id = { self.shared.lock().session.next_sender_id() };
        self.claim_fragmented_send(id).await?;
        let mut guard = FragmentGuard {
            connection: self,
            id,
            finished: false,
        };
        let mut next = poll_fn(|cx| Pin::new(&mut chunks).poll_next(cx))
            .await
            .map(Into::into);
        let mut first: Option<bool> = None;
        while let Some(chunk) = next {
            // One chunk of lookahead tells whether this one is the last.
            next = poll_fn(|cx| Pin::new(&mut chunks).poll_next(cx))
                .await
                .map(Into::<Message>::into);
            let fin = next.is_none();
            {
                let mut inner = self.shared.lock();
                let is_text = chunk.is_text();
                let result = match first {
                    None if is_text => inner
                        .session
                        .protocol_mut()
                        .send_text(chunk.as_bytes(), fin),
                    None => inner
                        .session
                        .protocol_mut()
                        .send_binary(chunk.as_bytes(), fin),
                    Some(text) if text == is_text => inner
                        .session
                        .protocol_mut()
                        .send_continuation(chunk.as_bytes(), fin),
                    Some(_) => {
                        return Err(Error::InvalidState(
                            wskit_proto::InvalidState::FragmentedMessageInProgress,
                        ));
                    }
                };
                first.get_or_insert(is_text);
                if let Err(error) = result {
                    return Err(self.send_error(&inner, error));
                }
                self.shared.wake_driver(&mut inner);
            }
            self.drain().await?;
        }
        if first.is_none() {
            // No chunks: an empty binary message.
            let mut inner = self.shared.lock();
            if let Err(error) = inner.session.protocol_mut().send_binary(b"", true) {
                return Err(self.send_error(&inner, error));
            }
            self.shared.wake_driver(&mut inner);
        }
        guard.finished = true;
        Ok(())
    }

    /// Send a ping and return a future that resolves to the round-trip time when the matching
    /// pong arrives. A pong acknowledges its ping and every earlier one.
    ///
    /// `data` (text or bytes, at most 125 bytes) identifies the ping; pass `""` for a random
    /// 4-byte payload. The ping is queued for sending when the first `.await` returns;
    /// awaiting the [`Pong`] (or not) is only about the answer.
    ///
    /// ```no_run
    /// # async fn f(ws: wskit::Connection) -> wskit::Result<()> {
    /// let latency = ws.ping("").await?.await?;
    /// println!("latency: {latency:?}");
    /// ws.ping("Are you there?").await?; // sent; the answer is not awaited
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is not open; the returned future fails
    /// the same way if the connection closes before the pong.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the ping may or may not have been sent.
    pub async fn ping(&self, data: impl AsRef<[u8]>) -> Result<Pong> {
        let data = data.as_ref();
        let payload = if data.is_empty() {
            let mut random = [0; 4];
            getrandom::fill(&mut random).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
            Bytes::copy_from_slice(&random)
        } else {
            Bytes::copy_from_slice(data)
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.shared.lock();
            let now = Instant::now().into_std();
            match inner.session.send_ping(payload, now, Some(PongSender(tx))) {
                Ok(()) => {}
                Err(PingError::Duplicate) => {
                    return Err(Error::Concurrency(
                        "a ping with the same data is awaiting its pong",
                    ));
                }
                Err(PingError::InvalidState(error)) => {
                    return Err(self.send_error(&inner, error));
                }
                Err(_) => return Err(Error::Concurrency("the ping could not be sent")),
            }
            self.shared.wake_driver(&mut inner);
        }
        Ok(Pong {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Send an unsolicited pong (a unidirectional heartbeat). Pings are answered
    /// automatically; there is no need to call this for them.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is not open.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn pong(&self, data: impl AsRef<[u8]>) -> Result<()> {
        let data = data.as_ref();
        let mut inner = self.shared.lock();
        if let Err(error) = inner.session.protocol_mut().send_pong(data) {
            return Err(self.send_error(&inner, error));
        }
        self.shared.wake_driver(&mut inner);
        Ok(())
    }

    /// Close the connection with `code` and `reason`: send a close frame, wait for the
    /// peer's (at most `close_timeout`), then close the transport. Returns once it is closed.
    /// Closing a connection that is already closing or closed just waits for the end.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] for a code that cannot be sent (1004, 1006, 1015, 1016-2999,
    /// or outside 1000-4999), a reason longer than 123 bytes, or 1005 with a reason. Code 1005
    /// (no status) with an empty reason sends an empty close frame.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the closing handshake goes on in the background.
    pub async fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        let code = code.into();
        {
            let mut inner = self.shared.lock();
            if inner.state() == State::Open {
                inner.session.protocol_mut().send_close(code, reason)?;
                self.shared.wake_driver(&mut inner);
            }
        }
        self.wait_closed().await;
        Ok(())
    }

    /// Drop the connection at once, without the closing handshake: whatever is waiting to be
    /// written is discarded and the transport is shut down (TCP: a FIN, sent once the kernel
    /// has sent what it holds already; the socket itself is released when the connection's
    /// task ends, on a server when the handler returns). The connection is then closed with
    /// 1006 (abnormal closure), unless the peer's close frame had arrived already, on this side
    /// and, when its read ends, on the peer's.
    ///
    /// This is Python's `transport.abort()` (the seeds' `terminate()`), for a peer that
    /// misbehaves or does not answer: [`close`](Self::close) sends a close frame and waits for
    /// the peer's answer (up to `close_timeout`), which a peer that stopped reading never
    /// gives. Prefer `close` otherwise: it tells the peer why, and no data is lost.
    ///
    /// Does nothing on a connection that is already closed.
    pub fn abort(&self) {
        let mut inner = self.shared.lock();
        if inner.session.closed().is_some() || inner.aborted {
            return;
        }
        inner.aborted = true;
        inner.session.set_cause(|| "aborted".into());
        let _ = inner.session.protocol_mut().receive_eof();
        inner.session.protocol_mut().discard_output();
        self.shared.wake_driver(&mut inner);
    }

    /// Queue `message` for [`broadcast`](crate::broadcast): `frame` is the message framed once
    /// for every uncompressed server connection. Returns `false`, and queues nothing, when the
    /// connection is not open, is sending a fragmented message, or its write buffer is above
    /// the high mark.
    pub(crate) fn queue_broadcast(&self, message: &Message, frame: &[u8]) -> bool {
        // With the message, every connection gives an answer.
        self.queue_broadcast_as(Some(message), frame)
            .unwrap_or(false)
    }

    /// [`queue_broadcast`](Self::queue_broadcast) of `frame` alone: `None`, and nothing done,
    /// for a connection that needs the message framed for itself (a client, or compressed),
    /// which is the slow part of a broadcast: a caller holding a lock leaves those for after.
    pub(crate) fn queue_broadcast_frame(&self, frame: &[u8]) -> Option<bool> {
        self.queue_broadcast_as(None, frame)
    }

    fn queue_broadcast_as(&self, message: Option<&Message>, frame: &[u8]) -> Option<bool> {
        let mut inner = self.shared.lock();
        let shared_frame = inner.session.protocol().role() == Role::Server
            && !inner.session.protocol().is_compressed();
        if !shared_frame && message.is_none() {
            return None;
        }
        let buffered = inner.session.buffered();
        if buffered > inner.session.config().write_limit
            || inner.session.fragmented_sender().is_some()
        {
            return Some(false);
        }
        let queued = match message {
            // Clients mask each frame with a fresh key, and compression keeps per-connection
            // state: frame it for this connection.
            Some(message) if !shared_frame => {
                inner.session.protocol_mut().send_message(message).is_ok()
            }
            _ => inner.session.protocol_mut().send_encoded(frame).is_ok(),
        };
        if queued {
            self.shared.wake_driver(&mut inner);
        }
        Some(queued)
    }

    /// Let go of the empty buffers of a connection that had no traffic since the last call:
    /// the protocol's read and write buffers, the receive and ping queues, and (through its
    /// driver, woken for it) the write buffer being written. Whatever holds data is kept, and
    /// a busy connection (its lock held) is skipped; the buffers are allocated again when
    /// traffic resumes. Called periodically by a server, so that connections that go quiet
    /// hold no buffers.
    pub(crate) fn release_if_idle(&self) {
        // A connection whose lock is held is busy: nothing to take back, and no reason to wait.
        let mut inner = match self.shared.inner.try_lock() {
            Ok(inner) => inner,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if std::mem::take(&mut inner.active) {
            return;
        }
        inner.release_empty_buffers();
        if inner.out_held {
            inner.release_out = true;
            self.shared.wake_driver(&mut inner);
        }
    }

    /// Start the closing handshake without waiting for it (used by `Server::close`).
    pub(crate) fn start_close(&self, code: CloseCode, reason: &str) {
        let mut inner = self.shared.lock();
        if inner.state() == State::Open
            && inner
                .session
                .protocol_mut()
                .send_close(code, reason)
                .is_ok()
        {
            self.shared.wake_driver(&mut inner);
        }
    }

    /// Wait until the connection is closed, and return how.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_closed(&self) -> Closed {
        loop {
            let notified = self.shared.write_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(closed) = self.shared.lock().session.closed() {
                return Closed::clone(closed);
            }
            notified.await;
        }
    }

    /// A unique id for this connection, within the process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// The connection state: OPEN, CLOSING, or CLOSED.
    pub fn state(&self) -> State {
        let inner = self.shared.lock();
        if inner.session.closed().is_some() {
            State::Closed
        } else {
            inner.state()
        }
    }

    /// Whether the connection is closed and done with (its transport closed), without taking
    /// its lock.
    pub(crate) fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// Whether the connection is open: messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// The round-trip time measured by the last ping answered (keepalive or
    /// [`ping`](Self::ping)); zero before the first.
    pub fn latency(&self) -> Duration {
        self.shared.lock().session.latency()
    }

    /// The subprotocol negotiated during the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.shared.subprotocol.as_deref()
    }

    /// The value of type `T` that the server's handshake hooks stored for this connection
    /// with [`Handshake::insert`](crate::server::Handshake::insert): the authenticated user, a
    /// route's parameters, a session looked up from a cookie. `None` if there is none (always,
    /// on a client).
    ///
    /// ```
    /// # async fn run() -> wskit::Result<()> {
    /// #[derive(Debug, PartialEq)]
    /// struct User(String);
    ///
    /// async fn handler(ws: wskit::Connection) -> wskit::Result<()> {
    ///     let User(name) = ws.data::<User>().expect("set by process_request");
    ///     ws.send(format!("Hello {name}!")).await
    /// }
    ///
    /// let server = wskit::serve(handler, "127.0.0.1:0")
    ///     .process_request(|handshake, request| {
    ///         match request.headers.get("X-User") {
    ///             Some(name) => {
    ///                 handshake.insert(User(name.to_owned()));
    ///                 None // go on with the handshake
    ///             }
    ///             None => Some(wskit::Response::new(401, "Who are you?\n")),
    ///         }
    ///     })
    ///     .await?;
    /// let ws = wskit::connect(format!("ws://{}/", server.local_addr().unwrap()))
    ///     .header("X-User", "alice")
    ///     .await?;
    /// assert_eq!(ws.recv().await?, "Hello alice!");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.info.data.as_ref()?.get::<T>()
    }

    crate::data::info_accessors!();

    /// Whether permessage-deflate was negotiated for this connection.
    pub fn is_compressed(&self) -> bool {
        self.shared.lock().session.protocol().is_compressed()
    }

    /// The close code, once the connection is closed: the one received, 1006 if none.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.shared
            .lock()
            .session
            .closed()
            .map(|closed| closed.code())
    }

    /// The close reason received, once the connection is closed.
    pub fn close_reason(&self) -> Option<String> {
        self.shared
            .lock()
            .session
            .closed()
            .map(|c| c.reason().to_owned())
    }

    /// The number of bytes waiting to be written.
    pub fn buffered_amount(&self) -> usize {
        let inner = self.shared.lock();
        inner.session.buffered()
    }

    // ----- internals -----

    fn start_receiving(&self) -> Result<ReceivingGuard<'_>> {
        let mut inner = self.shared.lock();
        if inner.receiving {
            return Err(Error::Concurrency(
                "another task is receiving from this connection",
            ));
        }
        inner.receiving = true;
        Ok(ReceivingGuard {
            shared: &self.shared,
            registered: true,
        })
    }

    /// Take a whole message off the queue if there is one. `None`: wait.
    fn try_recv_message(
        &self,
        inner: &mut MutexGuard<'_, Inner>,
        current: &Waker,
    ) -> Option<Result<Message>> {
        while let Some(fragment) = inner.session.pop_fragment() {
            self.after_dequeue(inner, current);
            // The common case first, with the message built in place: a whole message while
            // none is being assembled.
            if !inner.session.is_assembling() && fragment.is_first() && fragment.is_fin() {
                match fragment.into_message() {
                    Ok(message) => return Some(Ok(message)),
                    Err(_) => unreachable!("a first and last piece is a message"),
                }
            }
            if let Some(message) = inner.session.assemble(fragment) {
                return Some(message.map_err(Error::Protocol));
            }
        }
        inner
            .session
            .closed()
            .map(|closed| Err(Error::ConnectionClosed(Box::new(Closed::clone(closed)))))
    }

    /// Resume reading if it was paused for a full queue and the queue is down to the low
    /// mark. A driver polled by the receiver's own task (`current`) is not woken: that task
    /// polls it next anyway (the server's connection task).
    fn after_dequeue(&self, inner: &mut MutexGuard<'_, Inner>, current: &Waker) {
        if inner.session.at_low_mark() {
            self.shared.wake_driver_from(inner, current);
        }
    }

    fn send_error(&self, inner: &Inner, error: wskit_proto::InvalidState) -> Error {
        match error {
            wskit_proto::InvalidState::WrongState(State::Closing | State::Closed) => {
                Error::ConnectionClosed(Box::new(inner.session.closed_so_far()))
            }
            other => Error::InvalidState(other),
        }
    }

    /// Wait while the write buffer is above the high mark, until it reaches the low mark.
    async fn drain(&self) -> Result<()> {
        let mut above_high = false;
        loop {
            let notified = self.shared.write_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.shared.lock();
                let buffered = inner.session.buffered();
                let config = inner.session.config();
                // The message is queued; below the limit there is nothing to wait for, even if
                // the peer closed meanwhile (a reply and a close can both arrive before this
                // check: the send still happened).
                if buffered <= config.write_limit_low
                    || (!above_high && buffered <= config.write_limit)
                {
                    return Ok(());
                }
                if inner.session.closed().is_some() {
                    return Err(Error::ConnectionClosed(Box::new(
                        inner.session.closed_so_far(),
                    )));
                }
                above_high = true;
            }
            notified.await;
        }
    }

    /// Wait until no other call is sending a fragmented message, and take the slot.
    async fn claim_fragmented_send(&self, id: u32) -> Result<()> {
        loop {
            let notified = self.shared.write_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.shared.lock();
                if inner.session.closed().is_some() {
                    return Err(Error::ConnectionClosed(Box::new(
                        inner.session.closed_so_far(),
                    )));
                }
                if inner.session.claim_fragmented(id) {
                    return Ok(());
                }
            }
            notified.await;
        }
    }
}

/// The messages of the connection; ends quietly after a normal closure, like
/// [`Connection::next`].
impl Stream for Connection {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.poll_recv(cx)) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(error) if error.is_closed_ok() => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last handle: nobody can receive or send any more, so close.
        let mut inner = self.shared.lock();
        if inner.state() == State::Open {
            let _ = inner
                .session
                .protocol_mut()
                .send_close(CloseCode::NORMAL, "");
            self.shared.wake_driver(&mut inner);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("role", &self.shared.role)
            .field("remote_addr", &self.shared.info.remote_addr)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Connection {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Connection {}

impl std::hash::Hash for Connection {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state);
    }
}

/// An iterator as a [`Stream`] that is always ready.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> Stream for IterStream<I> {
    type Item = I::Item;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.0.next())
    }
}

/// The future of [`Connection::send`], written by hand to keep every handler's future small
/// (idle memory per connection): the message, or the boxed slow path it waits in.
struct SendMessage<'a> {
    connection: &'a Connection,
    state: SendState<'a>,
}

enum SendState<'a> {
    Start(Message),
    /// Queued, waiting for the write buffer to drain below the low mark; or waiting for
    /// another call's fragmented message to end before queueing.
    Waiting(Pin<Box<dyn Future<Output = Result<()>> + Send + Sync + 'a>>),
    Done,
}

impl Future for SendMessage<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let connection = this.connection;
        if let SendState::Start(_) = this.state {
            // Take part in tokio's cooperative scheduling: a task that only sends, below the
            // write limit, would otherwise never yield and could starve the runtime's other
            // tasks.
            ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
            let SendState::Start(message) = std::mem::replace(&mut this.state, SendState::Done)
            else {
                unreachable!()
            };
            // The common case, without registering for notifications: no fragmented message
            // is being sent, and the buffer is below the high mark afterwards.
            let mut inner = connection.shared.lock();
            if inner.session.fragmented_sender().is_some() {
                drop(inner);
                this.state =
                    SendState::Waiting(Box::pin(connection.send_after_fragmented(message)));
            } else {
                if let Err(error) = inner.session.protocol_mut().send_message(&message) {
                    return Poll::Ready(Err(connection.send_error(&inner, error)));
                }
                connection.shared.wake_driver_from(&mut inner, cx.waker());
                let buffered = inner.session.buffered();
                if buffered <= inner.session.config().write_limit {
                    return Poll::Ready(Ok(()));
                }
                drop(inner);
                this.state = SendState::Waiting(Box::pin(connection.drain()));
            }
        }
        match &mut this.state {
            SendState::Waiting(waiting) => {
                let result = ready!(waiting.as_mut().poll(cx));
                this.state = SendState::Done;
                Poll::Ready(result)
            }
            SendState::Start(_) | SendState::Done => panic!("`send` polled after completion"),
        }
    }
}

/// The future of [`Connection::recv`], written by hand to keep every handler's future small
/// (idle memory per connection).
struct Recv<'a> {
    connection: &'a Connection,
    /// `receiving` is only set if this call has to wait: a message already queued is taken
    /// with one lock.
    guard: ReceivingGuard<'a>,
}

impl<'a> Recv<'a> {
    fn new(connection: &'a Connection) -> Self {
        Self {
            guard: ReceivingGuard {
                shared: &connection.shared,
                registered: false,
            },
            connection,
        }
    }
}

impl Future for Recv<'_> {
    type Output = Result<Message>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        let this = self.get_mut();
        let mut inner = this.connection.shared.lock();
        if !this.guard.registered {
            if inner.receiving {
                return Poll::Ready(Err(Error::Concurrency(
                    "another task is receiving from this connection",
                )));
            }
            inner.receiving = true;
            this.guard.registered = true;
        }
        let result = this.connection.poll_recv_locked(&mut inner, cx);
        if result.is_ready() {
            inner.receiving = false;
            this.guard.registered = false;
        }
        result
    }
}

/// Holds a connection's `receiving` flag while set (`registered`), and clears it if the call
/// that set it is dropped.
struct ReceivingGuard<'a> {
    shared: &'a Shared,
    registered: bool,
}

impl Drop for ReceivingGuard<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.shared.lock().receiving = false;
        }
    }
}

struct FragmentGuard<'a> {
    connection: &'a Connection,
    id: u32,
    finished: bool,
}

impl Drop for FragmentGuard<'_> {
    fn drop(&mut self) {
        let shared = &self.connection.shared;
        let mut inner = shared.lock();
        let was_open = inner.state() == State::Open;
        inner.session.release_fragmented(self.id, self.finished);
        if was_open && inner.state() != State::Open {
            shared.wake_driver(&mut inner);
        }
        drop(inner);
        shared.write_ready.notify_waiters();
    }
}

/// The pong of a [`Connection::ping`]: resolves to the round-trip time. The ping is queued
/// for sending already: dropping this only gives up on the answer.
pub struct Pong {
    rx: oneshot::Receiver<Duration>,
    shared: Arc<Shared>,
}

impl Future for Pong {
    type Output = Result<Duration>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match ready!(Pin::new(&mut self.rx).poll(cx)) {
            Ok(latency) => Poll::Ready(Ok(latency)),
            Err(_) => {
                let inner = self.shared.lock();
                Poll::Ready(Err(Error::ConnectionClosed(Box::new(
                    inner.session.closed_so_far(),
                ))))
            }
        }
    }
}

impl fmt::Debug for Pong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pong").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the protocol consistent (every method either
        // completes or returns an error before mutating), so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake_driver(&self, inner: &mut Inner) {
        if let Some(waker) = inner.driver_waker.take() {
            waker.wake();
        }
    }

    /// Wake the driver from a task whose waker is `current`, unless the driver runs in that
    /// same task: the server's connection task polls its driver right after the handler.
    fn wake_driver_from(&self, inner: &mut Inner, current: &Waker) {
        match &inner.driver_waker {
            Some(waker) if waker.will_wake(current) => {}
            _ => self.wake_driver(inner),
        }
    }
}

/// The runtime's clock (tokio's, which tests can pause) as the session's `Instant`.
fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

// ===== Driver =====

/// The future that runs a connection's I/O. It completes when the connection is closed.
///
/// Each poll takes the connection's lock once, reads and parses under it, and releases it only
/// around the write system call, so that a handle sending from another thread never waits for
/// a large write. (A quiet connection's small replies, up to [`SMALL_WRITE`] bytes, are written
/// with the lock held: a short copy into the socket's buffer.)
#[must_use = "the driver does nothing unless polled"]
pub(crate) struct Driver<S> {
    shared: Arc<Shared>,
    io: Io<S>,
}

/// The driver's own state: everything but the shared part.
struct Io<S> {
    stream: S,
    /// What is being written, taken from the protocol whole (large payloads out of line).
    out: Output,
    /// Whether a write needs flushing (TLS buffers internally).
    needs_flush: bool,
    eof_received: bool,
    shutdown_sent: bool,
    timer: Option<Pin<Box<Sleep>>>,
    /// The driver completed: the connection is closed.
    done: bool,
    /// A message was queued for a receiver that waits in the task polling this driver: its
    /// wake-up was skipped, and whoever polls both (the server's connection task) must poll
    /// the receiver again.
    receiver_ready: bool,
    /// The last read from the socket found nothing: the task's waker is registered with the
    /// reactor, which wakes it when data comes.
    read_registered: bool,
    /// This poll comes right after another in the same wake-up of the task (see
    /// [`Driver::poll_again`]).
    polled_again: bool,
}

/// The size of each runtime thread's read buffer (see [`SLAB`]): the most read in one
/// system call unless a large frame is arriving.
const SLAB_LEN: usize = 64 << 10;

/// A thread's read buffer is replaced by a new one when less than this is left of it.
const SLAB_MIN_SPARE: usize = 32 << 10;

/// Read straight into the protocol's input buffer when it has at least this much room
/// reserved for a frame that is arriving.
const DIRECT_READ_MIN: usize = 16 << 10;

/// The largest empty input buffer a connection keeps between reads.
const IDLE_INPUT_MAX: usize = 4 << 10;

/// The largest empty write buffer a connection keeps between writes.
const IDLE_OUTPUT_MAX: usize = 16 << 10;

/// Output up to this size is written straight from the protocol's buffer, with the
/// connection's lock held (see [`Driver::poll_again`]).
const SMALL_WRITE: usize = 4 << 10;

/// The most pieces (frame headers and out-of-line payloads) in one vectored write.
const MAX_WRITE_SLICES: usize = 16;

/// The most read-process-write rounds in one poll, so that one busy connection cannot starve
/// the others on its thread.
const ROUNDS_PER_POLL: usize = 32;

thread_local! {
    /// Where the connections that run on this thread read, so that an idle connection holds
    /// no read buffer. A short read is copied into the connection's input buffer and the slab
    /// reused; a long one (at least [`DIRECT_READ_MIN`] bytes into an empty input buffer)
    /// becomes the input buffer, without a copy, and the messages parsed from it keep the
    /// whole slab (one allocation) alive until they are dropped; when too little is left, the
    /// thread takes the slab back if nothing refers to it any more, or starts a new one.
    static SLAB: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Read into the spare capacity of `buf`, without zeroing it first (tokio-util's safe
/// `poll_read_buf`: the bytes the read filled are the only ones `buf` gains).
fn read_into_spare<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf)
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn new(shared: Arc<Shared>, stream: S) -> Self {
        let mut io = Io {
            stream,
            out: Output::new(),
            needs_flush: false,
            eof_received: false,
            shutdown_sent: false,
            timer: None,
            done: false,
            receiver_ready: false,
            read_registered: false,
            polled_again: false,
        };
        // Frames that arrived in the same read as the handshake were parsed with it: queue
        // their messages now, or they would wait for the next read from the socket.
        io.process_events(&shared, &mut shared.lock(), None);
        Self { shared, io }
    }

    /// Whether a message was queued for a receiver polled by the same task as this driver,
    /// without waking it (see [`Io::receiver_ready`]). Clears the flag.
    pub(crate) fn take_receiver_ready(&mut self) -> bool {
        std::mem::take(&mut self.io.receiver_ready)
    }

    /// Count a handle held by whoever polls this driver (the server's connection task, for
    /// its handler), so that the handler dropping its last [`Connection`] does not close the
    /// connection with 1000 before the task knows how the handler ended. Released by
    /// [`release_handle`](Self::release_handle).
    pub(crate) fn hold_handle(&self) {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// Close the connection with `code` if it is still open, and release the handle counted
    /// by [`hold_handle`](Self::hold_handle).
    pub(crate) fn release_handle(&self, code: CloseCode) {
        {
            let mut inner = self.shared.lock();
            if inner.state() == State::Open
                && inner.session.protocol_mut().send_close(code, "").is_ok()
            {
                self.shared.wake_driver(&mut inner);
            }
        }
        drop(Connection {
            shared: Arc::clone(&self.shared),
        });
    }

    /// Poll again in the same wake-up of the task, after the handler ran: to write what it
    /// sent. The socket is not read again if the last read found it empty (the reactor wakes
    /// the task when data comes; nothing else can have arrived since).
    pub(crate) fn poll_again(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.write_what_was_sent(cx) {
            return Poll::Pending;
        }
        self.io.polled_again = true;
        let result = Pin::new(&mut *self).poll(cx);
        self.io.polled_again = false;
        result
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The common case of [`poll_again`](Self::poll_again), without the rest of a poll: the
    /// connection is open and quiet (its last read found the socket empty, nothing is being
    /// written, no failure is pending, nobody woke the driver), so all there is to do is to
    /// write what the handler sent. `false` when a full poll is needed.
    fn write_what_was_sent(&mut self, cx: &mut Context<'_>) -> bool {
        let Self { shared, io } = self;
        let shared: &Shared = shared;
        let mut inner = shared.lock();
        let quiet = io.read_registered
            && !inner.session.read_paused()
            && io.out.is_empty()
            && !io.needs_flush
            && inner.state() == State::Open
            && inner.session.protocol().pending_failure().is_none()
            && inner
                .driver_waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
        if !quiet {
            return false;
        }
        if inner.session.protocol().data_to_send().is_empty() {
            return true;
        }
        let pending = inner.session.protocol().bytes_to_send();
        if pending <= SMALL_WRITE.min(inner.session.config().write_limit_low)
            && !inner.session.protocol().output().has_out_of_line()
        {
            // A small write goes straight from the protocol's buffer, with the lock held: it
            // is a short copy into the socket's buffer, and it saves handing the buffer over
            // and taking the lock again. Below the low mark, no sender waits for it.
            let written =
                Pin::new(&mut io.stream).poll_write(cx, inner.session.protocol().data_to_send());
            return match written {
                Poll::Ready(Ok(n)) => {
                    inner.active = true;
                    inner.session.protocol_mut().consume_data_to_send(n);
                    io.needs_flush = true;
                    if n == pending
                        && let Poll::Ready(Ok(())) = Pin::new(&mut io.stream).poll_flush(cx)
                    {
                        io.needs_flush = false;
                        true
                    } else {
                        false
                    }
                }
                // Not writable now, or an error: the full poll takes over.
                Poll::Pending | Poll::Ready(Err(_)) => false,
            };
        }
        io.take_output(&mut inner);
        let (inner, written) = io.write_unlocked(shared, inner, cx);
        // Written whole, and nothing new: done. Otherwise (partly written, an error, more to
        // write) the full poll takes over.
        matches!(written, Poll::Ready(Ok(()))) && inner.session.protocol().data_to_send().is_empty()
    }
}

impl<S> Driver<S> {
    /// Whether the driver completed (the connection is closed).
    pub(crate) fn is_done(&self) -> bool {
        self.io.done
    }

    /// Whether the connection is still open (neither closing nor closed).
    pub(crate) fn is_open(&self) -> bool {
        self.shared.lock().state() == State::Open
    }

    /// The connection's id.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address, if known.
    pub(crate) fn remote_addr(&self) -> Option<&PeerAddr> {
        self.shared.info.remote_addr.as_ref()
    }
}

impl<S> Io<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Read what the socket has and feed it to the protocol, under the lock. `Ready(())` when
    /// something happened.
    fn poll_read(&mut self, shared: &Shared, inner: &mut Inner, cx: &mut Context<'_>) -> Poll<()> {
        inner.session.clear_read_paused();
        if self.eof_received {
            return Poll::Pending;
        }
        let paused = !inner.session.may_read();
        // After the closing handshake the client still reads, waiting for the server's EOF.
        if paused || inner.state() == State::Closed {
            return Poll::Pending;
        }
        if self.polled_again && self.read_registered {
            return Poll::Pending;
        }
        // The protocol's input buffer holds the start of a frame that is still arriving, if
        // any.
        let mut input = inner.session.protocol_mut().input_buffer();
        let mut large = false;
        let result = if input.spare_capacity() >= DIRECT_READ_MIN {
            // A large frame is arriving and the protocol reserved room for it: read straight
            // into that room, without a copy.
            large = true;
            input.append_with(|spare| read_into_spare(&mut self.stream, cx, spare))
        } else {
            // Read into this thread's slab; `input` then holds only what came.
            SLAB.with_borrow_mut(|slab| {
                if slab.capacity() < SLAB_MIN_SPARE {
                    // The same memory again once every message read into it was dropped (an
                    // echo: written and gone), which keeps it in the cache; a new slab
                    // otherwise.
                    slab.reserve(SLAB_LEN);
                }
                let result = read_into_spare(&mut self.stream, cx, slab);
                if input.is_empty() && slab.len() >= DIRECT_READ_MIN {
                    let taken = input.replace_empty(slab.split());
                    debug_assert!(taken.is_ok(), "checked empty");
                    large = true;
                } else {
                    input.extend_from_slice(slab);
                    slab.clear();
                }
                result
            })
        };
        inner.large_input |= large;
        self.read_registered = result.is_pending();
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.eof_received = true;
                if let Err(error) = inner.session.protocol_mut().receive_eof() {
                    inner.session.set_cause(|| error.to_string());
                }
                self.process_events(shared, inner, Some(cx.waker()));
                Poll::Ready(())
            }
            Poll::Ready(Ok(_)) => {
                inner.active = true;
                if let Err(error) = inner.session.protocol_mut().receive_buffered() {
                    tracing::debug!(id = shared.id, %error, "failing connection");
                    inner.session.set_cause(|| error.to_string());
                }
                self.process_events(shared, inner, Some(cx.waker()));
                // Keep no large, empty input buffer while idle, nor an empty view of one (a
                // slab, or the buffer a large message was read into), which would keep all of
                // it alive.
                let mut input = inner.session.protocol_mut().input_buffer();
                if input.is_empty() && (input.capacity() > IDLE_INPUT_MAX || inner.large_input) {
                    input.release_if_empty();
                    inner.large_input = false;
                }
                Poll::Ready(())
            }
            Poll::Ready(Err(error)) => {
                tracing::debug!(id = shared.id, %error, "read failed");
                self.eof_received = true;
                inner.session.set_cause(|| error.to_string());
                let _ = inner.session.protocol_mut().receive_eof();
                self.process_events(shared, inner, Some(cx.waker()));
                Poll::Ready(())
            }
        }
    }

    /// Queue what the protocol parsed and wake the receiver. A receiver that waits in the task
    /// that polls the driver (`waker`) is not woken: it is flagged instead (`receiver_ready`).
    fn process_events(&mut self, shared: &Shared, inner: &mut Inner, waker: Option<&Waker>) {
        let id = shared.id;
        let queued = inner.session.handle_events(now_std, |event| match event {
            Event::Fragment(fragment) => tracing::trace!(
                id,
                len = fragment.data().len(),
                fin = fragment.is_fin(),
                "frame received"
            ),
            Event::Ping(data) => tracing::trace!(id, ?data, "ping received"),
            Event::Close(frame) => tracing::debug!(id, %frame, "close frame received"),
            _ => {}
        });
        if queued && let Some(receiver) = &inner.recv_waker {
            if waker.is_some_and(|waker| receiver.will_wake(waker)) {
                self.receiver_ready = true;
            } else if let Some(receiver) = inner.recv_waker.take() {
                receiver.wake();
            }
        }
    }

    /// Hand everything the protocol has to send to the write buffer, which has been written
    /// (the two buffers trade places, nothing is copied).
    fn take_output(&mut self, inner: &mut Inner) {
        if !inner.session.protocol().data_to_send().is_empty() {
            inner.session.protocol_mut().swap_output(&mut self.out);
            inner.active = true;
        }
        inner.session.set_in_flight(self.out.len());
    }

    /// Write the write buffer with the lock released, then take the lock again: count what is
    /// left in flight, and wake the senders waiting for the buffer to drain below the low mark.
    fn write_unlocked<'a>(
        &mut self,
        shared: &'a Shared,
        inner: MutexGuard<'a, Inner>,
        cx: &mut Context<'_>,
    ) -> (MutexGuard<'a, Inner>, Poll<io::Result<()>>) {
        let before = inner.session.buffered();
        drop(inner);
        let written = self.poll_write(cx);
        let mut inner = shared.lock();
        inner.session.set_in_flight(self.out.len());
        inner.out_held = self.out.capacity() > 0;
        let after = inner.session.buffered();
        let low = inner.session.config().write_limit_low;
        if after <= low && before > low {
            shared.write_ready.notify_waiters();
        }
        (inner, written)
    }

    /// Write the write buffer, without the lock. `Ready(Ok(()))` once all of it is written
    /// (and flushed).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let stream = Pin::new(&mut self.stream);
            let n = if self.out.has_out_of_line() {
                // Frame headers and the payloads they announce, in one system call.
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let filled = self.out.io_slices(&mut slices);
                ready!(stream.poll_write_vectored(cx, &slices[..filled]))?
            } else {
                ready!(stream.poll_write(cx, self.out.chunk()))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
            self.needs_flush = true;
        }
        if self.needs_flush {
            ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            self.needs_flush = false;
        }
        // Keep no large buffer around while idle.
        if self.out.capacity() > IDLE_OUTPUT_MAX {
            self.out = Output::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Keepalive pings, the ping timeout and the close timeout: the session's deadlines, on
    /// the runtime's timer.
    fn poll_timers(
        &mut self,
        shared: &Shared,
        inner: &mut Inner,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        // The common case, first and without the clock: nothing new needs a deadline, and the
        // timer (armed at the earliest deadline) has not fired.
        if !inner.session.needs_timeout_check() {
            let idle = match &mut self.timer {
                Some(timer) => timer.as_mut().poll(cx).is_pending(),
                None => !inner.session.has_deadlines(),
            };
            if idle {
                return Poll::Pending;
            }
        }
        let receiver_waiting = inner.recv_waker.is_some();
        let timeout = inner
            .session
            .handle_timeout(Instant::now().into_std(), receiver_waiting);
        if timeout.close_transport {
            tracing::debug!(id = shared.id, "close timeout: closing the transport");
            self.eof_received = true;
            self.out.clear();
            self.needs_flush = false;
        }
        let mut fired = timeout.fired;
        match inner.session.poll_timeout() {
            None => self.timer = None,
            Some(deadline) => {
                let deadline = Instant::from_std(deadline);
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    fired = true;
                }
            }
        }
        if fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Mark the connection closed and wake everyone.
    fn finish(&mut self, shared: &Shared, mut inner: MutexGuard<'_, Inner>) {
        self.done = true;
        let (closed, cause) = inner.session.finish();
        match &cause {
            None => {
                tracing::debug!(id = shared.id, code = %closed.code(), reason = closed.reason(), "connection closed")
            }
            Some(cause) => {
                tracing::debug!(id = shared.id, code = %closed.code(), reason = closed.reason(), cause = cause.as_str(), "connection closed")
            }
        }
        shared.finished.store(true, Ordering::Release);
        inner.release_empty_buffers();
        let recv_waker = inner.recv_waker.take();
        drop(inner);
        if let Some(waker) = recv_waker {
            waker.wake();
        }
        shared.write_ready.notify_waiters();
        self.out = Output::new();
    }
}

impl<S> Future for Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Self { shared, io } = self.get_mut();
        let shared: &Shared = shared;
        let mut inner = shared.lock();
        // Registered first, so that whatever a handle does while this poll runs (the lock is
        // released around writes) wakes the task again.
        match &inner.driver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.driver_waker = Some(cx.waker().clone()),
        }
        if std::mem::take(&mut inner.release_out) && io.out.is_empty() {
            io.out = Output::new();
            inner.out_held = false;
        }
        if inner.aborted {
            // What was being written goes too (also when the peer had ended its side already);
            // the loop below closes the transport.
            io.eof_received = true;
            io.out.clear();
            io.needs_flush = false;
            inner.session.set_in_flight(0);
        }
        for _ in 0..ROUNDS_PER_POLL {
            let mut progress = io.poll_read(shared, &mut inner, cx).is_ready();
            progress |= io.poll_timers(shared, &mut inner, cx).is_ready();

            if io.out.is_empty() {
                io.take_output(&mut inner);
            }
            if !io.out.is_empty() || io.needs_flush {
                let written;
                (inner, written) = io.write_unlocked(shared, inner, cx);
                if let Poll::Ready(Err(error)) = written {
                    tracing::debug!(id = shared.id, %error, "write failed");
                    inner.session.set_cause(|| error.to_string());
                    let _ = inner.session.protocol_mut().receive_eof();
                    io.eof_received = true;
                    io.out.clear();
                    io.finish(shared, inner);
                    return Poll::Ready(());
                }
            }

            let flushed = io.out.is_empty()
                && inner.session.protocol().data_to_send().is_empty()
                && !io.needs_flush;
            if flushed && inner.state() == State::Closed {
                if !io.shutdown_sent {
                    let _ = Pin::new(&mut io.stream).poll_shutdown(cx);
                    io.shutdown_sent = true;
                }
                io.finish(shared, inner);
                return Poll::Ready(());
            }
            if flushed && inner.session.protocol().should_close_transport() && !io.shutdown_sent {
                // The server closes the TCP connection first; then it waits for the client's
                // EOF (or the close timeout).
                if Pin::new(&mut io.stream).poll_shutdown(cx).is_ready() {
                    io.shutdown_sent = true;
                    progress = true;
                }
            }
            if !progress {
                // Something a handle did while the lock was released: go round again.
                let waiting_output =
                    io.out.is_empty() && !inner.session.protocol().data_to_send().is_empty();
                let resume_reading = inner.session.should_resume_reading();
                let unarmed_close = inner.session.close_deadline_unset();
                if waiting_output || resume_reading || unarmed_close {
                    continue;
                }
                return Poll::Pending;
            }
        }
        // Still busy: yield to other tasks and come back.
        drop(inner);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S> fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use wskit_proto::Config;

    use super::*;

    /// A client protocol that completed its handshake in memory, and frames from its server.
    fn open_client(server_frames: &[&[u8]]) -> (Protocol, Vec<Vec<u8>>) {
        let config = |streaming| {
            Config::default()
                .with_compression(None)
                .with_streaming(streaming)
        };
        let mut client = Protocol::client(config(true));
        let mut server = Protocol::server(config(false));
        let request = client.connect_request("localhost", "/");
        client.send_request(&request).unwrap();
        server.receive_data(&client.take_data_to_send()).unwrap();
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("no request");
        };
        let response = server.accept(&request).unwrap();
        server.send_response(&response).unwrap();
        client.receive_data(&server.take_data_to_send()).unwrap();
        assert!(matches!(client.poll_event(), Some(Event::Response(_))));
        let chunks = server_frames
            .iter()
            .map(|data| {
                server.send_binary(data, true).unwrap();
                server.take_data_to_send()
            })
            .collect();
        (client, chunks)
    }

    /// A transport that reads `chunks` one per call, refuses its first write, and runs
    /// `on_write` during its second write.
    struct Scripted {
        chunks: VecDeque<Vec<u8>>,
        writes: usize,
        on_write: Box<dyn FnMut() + Send>,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.chunks.pop_front() {
                Some(chunk) => {
                    buf.put_slice(&chunk);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Pending,
            }
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            if self.writes == 1 {
                return Poll::Pending;
            }
            (self.on_write)();
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `recv` empties a full queue while the driver is between pausing its reads and
    /// registering its waker (here: during a write, as another thread could): the driver must
    /// not go to sleep with reading paused.
    #[test]
    fn a_queue_drained_while_the_driver_is_busy_resumes_reading() {
        let (protocol, chunks) = open_client(&[b"a", b"b"]);
        let received = Arc::new(Mutex::new(Vec::new()));
        let slot: Arc<Mutex<Option<Connection>>> = Arc::default();
        let on_write = {
            let (slot, received) = (Arc::clone(&slot), Arc::clone(&received));
            Box::new(move || {
                let slot = slot.lock().unwrap();
                let connection = slot.as_ref().unwrap();
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(message) = connection.poll_recv(&mut cx) {
                    received.lock().unwrap().push(message.unwrap());
                }
            })
        };
        let stream = Scripted {
            chunks: chunks.into(),
            writes: 0,
            on_write,
        };
        let config = ConnectionConfig::default()
            .with_max_queue(1)
            .with_ping_interval(None);
        let (connection, mut driver) =
            Connection::open(protocol, stream, config, ConnectionInfo::default());
        // Something to write, so that the driver writes after it paused reading.
        {
            let mut inner = connection.shared.lock();
            inner.session.protocol_mut().send_pong(b"").unwrap();
        }
        *slot.lock().unwrap() = Some(connection.clone());

        let waker = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let driver_waker = Waker::from(Arc::clone(&waker));
        let mut cx = Context::from_waker(&driver_waker);
        assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
        assert_eq!(
            received.lock().unwrap().len(),
            1,
            "the write drained the queue"
        );
        let read_b = connection.shared.lock().session.queued() == 1;
        let woken = waker.0.load(Ordering::SeqCst) > 0;
        assert!(
            read_b || woken,
            "the driver sleeps with reading paused and nothing will wake it"
        );
        slot.lock().unwrap().take();
    }
}
