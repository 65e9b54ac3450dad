//! Blocking connections: the [`Connection`] handle, its reader thread, and the transport they
//! share. See the [threading model](super#threading-model).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wskit_proto::connection::Fragment;
use wskit_proto::session::{PingError, PingWaiter, Session};
use wskit_proto::{CloseCode, Event, Message, Protocol, Role, State};

pub use wskit_proto::session::ConnectionConfig;

use crate::error::{Closed, Error, Result};
#[cfg(feature = "tls")]
use crate::tls::rustls;

/// How long a blocked write waits before it looks at the connection's deadlines (a peer that
/// stopped reading must not keep a writer, or the keepalive it runs, forever).
const WRITE_POLL: Duration = Duration::from_secs(1);

/// The longest a reader thread waits in a read before it looks at the connection again.
const READ_POLL: Duration = Duration::from_secs(1);

/// The reader thread's read buffer.
const READ_BUF: usize = 16 << 10;

/// The reader threads' stack: they parse, inflate and queue; nothing deep.
const READER_STACK: usize = 128 << 10;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// ===== Transport =====

/// A TCP or Unix socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Socket {
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(how),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => (&*s).read(buf),
            #[cfg(unix)]
            Self::Unix(s) => (&*s).read(buf),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => (&*s).write(buf),
            #[cfg(unix)]
            Self::Unix(s) => (&*s).write(buf),
        }
    }
}

/// The TLS state of a `wss://` connection. Locked briefly to decrypt what the reader read or
/// to encrypt what a writer writes; never across a blocking read or write.
#[cfg(feature = "tls")]
pub(crate) type Tls = Mutex<rustls::Connection>;

/// What the connection reads from and writes to.
pub(crate) struct Transport {
    pub(crate) socket: Socket,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Tls>,
}

impl Transport {
    pub(crate) fn plain(socket: Socket) -> Self {
        Self {
            socket,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Read what arrives into `plain` (decrypted): `Ok(0)` at the end of the stream. Blocks
    /// in the read only, without any lock held.
    pub(crate) fn read_into(&self, buf: &mut [u8], plain: &mut Vec<u8>) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            // What TLS decrypted already (it may read past the end of its handshake).
            if let Some(got) = take_plaintext(&mut lock(tls), plain)? {
                return Ok(got);
            }
            let n = self.socket.read(buf)?;
            let mut tls = lock(tls);
            if n == 0 {
                // A TLS stream ends with close_notify; a bare end is still the end here.
                return Ok(0);
            }
            let mut cipher = &buf[..n];
            let before = plain.len();
            while !cipher.is_empty() {
                tls.read_tls(&mut cipher)?;
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                // Drained as it comes: rustls holds little decrypted data before it refuses
                // to read more.
                if take_plaintext(&mut tls, plain)? == Some(0) && plain.len() == before {
                    return Ok(0);
                }
            }
            return match plain.len() - before {
                // Records without data (a TLS 1.3 ticket): nothing for the protocol yet.
                0 => Err(io::ErrorKind::Interrupted.into()),
                got => Ok(got),
            };
        }
        let n = self.socket.read(buf)?;
        plain.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Write `data` whole (encrypted first under TLS). `give_up` is asked after each
    /// [`WRITE_POLL`] without progress; the write fails with `TimedOut` when it says so.
    pub(crate) fn write_all(&self, data: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<()> {
        let sealed = self.seal(data)?;
        let raw = sealed.as_deref().unwrap_or(data);
        if self.write_raw(raw, None, give_up)? < raw.len() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(())
    }

    /// What goes on the wire for `data`: `None` when it is `data` itself (no TLS), the TLS
    /// records otherwise (with any record TLS has to send of its own).
    pub(crate) fn seal(&self, data: &[u8]) -> io::Result<Option<Vec<u8>>> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let mut cipher = Vec::with_capacity(data.len() + data.len() / 256 + 64);
            let mut tls = lock(tls);
            let mut rest = data;
            loop {
                // rustls buffers a limited amount: seal, drain, again.
                let n = if rest.is_empty() {
                    0
                } else {
                    tls.writer().write(rest)?
                };
                rest = &rest[n..];
                while tls.wants_write() {
                    tls.write_tls(&mut cipher)?;
                }
                if rest.is_empty() {
                    break;
                }
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
            return Ok(Some(cipher));
        }
        let _ = data;
        Ok(None)
    }

    /// Write raw bytes; returns how many were written: fewer than all only once `deadline`
    /// has passed, or when `give_up` says so after a [`WRITE_POLL`] without progress.
    pub(crate) fn write_raw(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        give_up: &dyn Fn() -> bool,
    ) -> io::Result<usize> {
        let mut written = 0;
        let overdue = || deadline.is_some_and(|deadline| Instant::now() >= deadline);
        while written < data.len() {
            match self.socket.write(&data[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    if written < data.len() && overdue() {
                        return Ok(written);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if overdue() || give_up() {
                        return Ok(written);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Whether TLS has records of its own to send (an alert, a post-handshake message).
    fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return lock(tls).wants_write();
        }
        false
    }

    /// Say the end of the stream: TLS close_notify, then the socket's FIN.
    fn shutdown_write(&self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            lock(tls).send_close_notify();
            if let Ok(Some(records)) = self.seal(&[]) {
                let _ = self.write_raw(&records, Some(Instant::now() + WRITE_POLL), &|| true);
            }
        }
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}

/// Move what TLS has decrypted into `plain`: `Some(n)` with the bytes moved, `Some(0)` at
/// close_notify, `None` when there is nothing yet.
#[cfg(feature = "tls")]
fn take_plaintext(tls: &mut rustls::Connection, plain: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let before = plain.len();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.reader().read(&mut chunk) {
            // close_notify: the end (after what came before it).
            Ok(0) => return Ok(Some(plain.len() - before)),
            Ok(k) => plain.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok((plain.len() > before).then(|| plain.len() - before))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves the state consistent (every protocol method either
    // completes or returns an error before mutating), so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ===== Connection =====

/// An open WebSocket connection, client or server side, for threads.
///
/// Cheap to clone: clones are handles to the same connection, usable from several threads at
/// once: one thread receives while others send (messages from concurrent sends never
/// interleave). The connection closes with 1000 when the last handle is dropped, if it is
/// still open. A reader thread per connection reads, answers pings and close frames, and runs
/// keepalive, whether or not anyone is receiving.
pub struct Connection {
    shared: Arc<Shared>,
}

pub(crate) use crate::data::ConnectionInfo;

struct Shared {
    id: u64,
    role: Role,
    subprotocol: Option<String>,
    info: ConnectionInfo,
    handles: AtomicUsize,
    transport: Transport,
    inner: Mutex<Inner>,
    /// Something changed: a message queued, output written, the connection closed, a
    /// receiver waiting.
    changed: Condvar,
    /// The transport was shut down (close timeout, ping timeout, abort): writers give up.
    dead: AtomicBool,
}

struct Inner {
    session: Session<PongSender>,
    /// A thread is writing: others queue their frames and it writes them too.
    writing: bool,
    /// A thread waits in `recv`.
    receiving: bool,
    /// The end of the stream was received (or reading failed).
    eof: bool,
    /// [`Connection::abort`] was called.
    aborted: bool,
    /// The end of the stream was sent (a server, after the closing handshake).
    shutdown_sent: bool,
    /// Bytes for the wire (TLS records already) that a writer could not write without
    /// waiting (the reader thread, a broadcast): the next writer writes them first. Empty
    /// (no memory) otherwise.
    leftover: Vec<u8>,
    /// Bytes taken from the protocol for writing, since the start.
    taken: u64,
    /// Of those, the bytes written (the end of the last batch written whole).
    written: u64,
    /// Senders waiting for their bytes to be written, who take over the writing when the
    /// thread writing is done with its batch.
    waiting_writers: usize,
}

/// Whether a flush waits for the socket to take everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// As long as it takes (the deadlines still run: see [`Shared::writer_gives_up`]): a
    /// sender, whose call returns once its bytes are written.
    Yes,
    /// At most a [`WRITE_POLL`] in all, then the rest is kept for the next writer; nothing
    /// is written while bytes are kept already (the socket was full a moment ago): a
    /// broadcast, a dropped handle.
    Once,
    /// At most a [`WRITE_POLL`] in all, kept bytes first: the reader thread, which must get
    /// back to reading.
    Reader,
}

/// What waits for the pong of [`Connection::ping`].
struct PongSender(mpsc::SyncSender<Duration>);

impl PingWaiter for PongSender {
    fn answered(self, latency: Duration) {
        let _ = self.0.try_send(latency);
    }
}

/// The answer to a [`Connection::ping`]: the round-trip time, once its pong comes.
#[derive(Debug)]
pub struct Pong {
    rx: mpsc::Receiver<Duration>,
    shared: Arc<Shared>,
}

impl Pong {
    /// Wait for the pong: the round-trip time.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection closes first.
    pub fn wait(self) -> Result<Duration> {
        self.rx.recv().map_err(|_| self.closed())
    }

    /// Wait at most `timeout` for the pong.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it did not come in time, [`Error::ConnectionClosed`] if the
    /// connection closed first.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Duration> {
        match self.rx.recv_timeout(timeout) {
            Ok(latency) => Ok(latency),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout("pong")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.closed()),
        }
    }

    fn closed(&self) -> Error {
        Error::ConnectionClosed(Box::new(lock(&self.shared.inner).session.closed_so_far()))
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("id", &self.id).finish()
    }
}

impl Connection {
    /// Wrap an open protocol and its transport, and start the reader thread.
    pub(crate) fn open(
        protocol: Protocol,
        transport: Transport,
        config: Arc<ConnectionConfig>,
        info: ConnectionInfo,
    ) -> Result<Self> {
        let mut protocol = protocol;
        protocol.release_buffers();
        let role = protocol.role();
        let subprotocol = protocol.subprotocol().map(str::to_owned);
        let session = Session::new(protocol, config, Instant::now());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Writes wake up now and then to look at the deadlines; reads are given their timeout
        // before each read.
        transport.socket.set_write_timeout(Some(WRITE_POLL))?;
        let shared = Arc::new(Shared {
            id,
            role,
            subprotocol,
            info,
            handles: AtomicUsize::new(1),
            transport,
            inner: Mutex::new(Inner {
                session,
                writing: false,
                receiving: false,
                eof: false,
                aborted: false,
                shutdown_sent: false,
                leftover: Vec::new(),
                taken: 0,
                written: 0,
                waiting_writers: 0,
            }),
            changed: Condvar::new(),
            dead: AtomicBool::new(false),
        });
        tracing::debug!(id, ?role, remote = ?shared.info.remote_addr, "connection open");
        let reader = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("wskit-reader-{id}"))
            .stack_size(READER_STACK)
            .spawn(move || reader.run_reader())?;
        Ok(Self { shared })
    }

    /// Receive the next message; blocks until one arrives.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] once the connection is closed and every message received
    /// before has been taken ([`Error::is_closed_ok`] tells a normal closure), and
    /// [`Error::Concurrency`] if another thread is already receiving.
    pub fn recv(&self) -> Result<Message> {
        self.recv_until(None)?
            .ok_or(Error::Timeout("recv without a deadline"))
    }

    /// Receive the next message, waiting at most `timeout`; `Ok(None)` if none came by then.
    /// Nothing is lost on a timeout: a message arriving later is returned by the next call.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Message>> {
        // A timeout too long to be a date is no timeout.
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Option<Message>> {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if inner.receiving {
            return Err(Error::Concurrency(
                "another thread is receiving from this connection",
            ));
        }
        loop {
            let before = inner.session.queued();
            let message = inner.session.pop_message();
            if before > inner.session.queued() && inner.session.should_resume_reading() {
                shared.changed.notify_all();
            }
            if let Some(message) = message {
                return message.map(Some).map_err(Error::Protocol);
            }
            if let Some(closed) = inner.session.closed() {
                return Err(Error::ConnectionClosed(Box::new(closed.clone())));
            }
            inner.receiving = true;
            if inner.session.protocol().pending_failure().is_some() {
                // Every message before the peer's error is taken: the reader applies it now.
                shared.changed.notify_all();
            }
            inner = match deadline {
                None => shared
                    .changed
                    .wait(inner)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        inner.receiving = false;
                        return Ok(None);
                    }
                    shared
                        .changed
                        .wait_timeout(inner, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
            inner.receiving = false;
        }
    }

    /// Receive the next piece of a message as it arrives, without waiting for the whole
    /// message: the way to stream a large fragmented message. Do not mix with
    /// [`recv`](Self::recv) in the middle of a message.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_fragment(&self) -> Result<Fragment> {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if inner.receiving {
            return Err(Error::Concurrency(
                "another thread is receiving from this connection",
            ));
        }
        loop {
            if let Some(fragment) = inner.session.pop_fragment() {
                if inner.session.should_resume_reading() {
                    shared.changed.notify_all();
                }
                return Ok(fragment);
            }
            if let Some(closed) = inner.session.closed() {
                return Err(Error::ConnectionClosed(Box::new(closed.clone())));
            }
            inner.receiving = true;
            inner = shared
                .changed
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.receiving = false;
        }
    }

    /// Send a message: anything that converts into [`Message`] (`&str`, `String`, `Bytes`,
    /// `Vec<u8>`, `&[u8]`...). Returns once it is written to the socket: by this thread, or
    /// by the thread that was writing when it was queued. Messages from concurrent calls never
    /// interleave.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is closing or closed, or closes before
    /// the message is written.
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        while inner.session.fragmented_sender().is_some() {
            if inner.session.closed().is_some() {
                return Err(closed_error(&inner));
            }
            inner = wait(&shared.changed, inner);
        }
        if let Err(error) = inner.session.protocol_mut().send_message(&message) {
            return Err(send_error(&inner, error));
        }
        shared.write_queued(inner)
    }

    /// Send one message in fragments, from an iterator of chunks, all text or all binary
    /// (the type of the first chunk), each chunk written as it comes. Other sends wait until
    /// the last fragment is queued.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection closes meanwhile, and
    /// [`Error::InvalidState`] if the chunks mix text and binary. A panic or an error in the
    /// middle leaves the message unfinished: the connection is then failed with 1011, so that
    /// the peer does not wait forever.
    pub fn send_fragments<I>(&self, chunks: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<Message>,
    {
        let shared = &*self.shared;
        let id = {
            let mut inner = lock(&shared.inner);
            let id = inner.session.next_sender_id();
            while !inner.session.claim_fragmented(id) {
                if inner.session.closed().is_some() {
                    return Err(closed_error(&inner));
                }
                inner = wait(&shared.changed, inner);
            }
            id
        };
        let mut guard = FragmentGuard {
            shared,
            id,
            finished: false,
        };
        let mut chunks = chunks.into_iter().map(Into::<Message>::into).peekable();
        let mut first: Option<bool> = None;
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            let mut inner = lock(&shared.inner);
            let is_text = chunk.is_text();
            let protocol = inner.session.protocol_mut();
            let result = match first {
                None if is_text => protocol.send_text(chunk.as_bytes(), fin),
                None => protocol.send_binary(chunk.as_bytes(), fin),
                Some(text) if text == is_text => protocol.send_continuation(chunk.as_bytes(), fin),
                Some(_) => {
                    return Err(Error::InvalidState(
                        wskit_proto::InvalidState::FragmentedMessageInProgress,
                    ));
                }
            };
            first.get_or_insert(is_text);
            if let Err(error) = result {
                return Err(send_error(&inner, error));
            }
            shared.write_queued(inner)?;
        }
        if first.is_none() {
            let mut inner = lock(&shared.inner);
            if let Err(error) = inner.session.protocol_mut().send_binary(b"", true) {
                return Err(send_error(&inner, error));
            }
            shared.write_queued(inner)?;
        }
        guard.finished = true;
        Ok(())
    }

    /// Send a ping. Returns a [`Pong`] that waits for the answer and gives the round-trip
    /// time; a pong acknowledges its ping and every earlier one. `data` (at most 125 bytes)
    /// identifies the ping; pass `""` for a random 4-byte payload.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is not open, [`Error::Concurrency`] if
    /// a ping with the same data awaits its pong.
    pub fn ping(&self, data: impl AsRef<[u8]>) -> Result<Pong> {
        let data = data.as_ref();
        let payload = if data.is_empty() {
            let mut random = [0; 4];
            getrandom::fill(&mut random).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
            Bytes::copy_from_slice(&random)
        } else {
            Bytes::copy_from_slice(data)
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        match inner
            .session
            .send_ping(payload, Instant::now(), Some(PongSender(tx)))
        {
            Ok(()) => {}
            Err(PingError::Duplicate) => {
                return Err(Error::Concurrency(
                    "a ping with the same data is awaiting its pong",
                ));
            }
            Err(PingError::InvalidState(error)) => return Err(send_error(&inner, error)),
            Err(_) => return Err(Error::Concurrency("the ping could not be sent")),
        }
        shared.write_queued(inner)?;
        Ok(Pong {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Send an unsolicited pong (a unidirectional heartbeat). Pings are answered
    /// automatically.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] if the connection is not open.
    pub fn pong(&self, data: impl AsRef<[u8]>) -> Result<()> {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if let Err(error) = inner.session.protocol_mut().send_pong(data.as_ref()) {
            return Err(send_error(&inner, error));
        }
        shared.write_queued(inner)
    }

    /// Close the connection with `code` and `reason`: send a close frame, wait for the
    /// peer's (at most `close_timeout`), then close the transport. Returns once it is closed.
    /// Closing a connection that is already closing or closed just waits for the end.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] for a code that cannot be sent, or a reason longer than 123
    /// bytes.
    pub fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        let code = code.into();
        {
            let shared = &*self.shared;
            let mut inner = lock(&shared.inner);
            if inner.session.protocol().state() == State::Open {
                inner.session.protocol_mut().send_close(code, reason)?;
                // Written, or the close timeout passed (wait_closed says how it ended).
                let _ = shared.write_queued(inner);
            }
        }
        self.wait_closed();
        Ok(())
    }

    /// Start the closing handshake without waiting for it: the close frame is written here
    /// unless the socket is full for a second (a peer that stopped reading), then by the
    /// reader thread.
    fn start_close(&self, code: CloseCode, reason: &str) {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if inner.session.protocol().state() == State::Open
            && inner
                .session
                .protocol_mut()
                .send_close(code, reason)
                .is_ok()
        {
            drop(shared.flush_as(inner, Waiting::Once));
        }
    }

    /// Queue a close frame without writing it: the reader thread writes it within a
    /// [`READ_POLL`] (used by `Server::close`, for every connection in turn).
    pub(crate) fn queue_close(&self, code: CloseCode, reason: &str) {
        let mut inner = lock(&self.shared.inner);
        if inner.session.protocol().state() == State::Open {
            let _ = inner.session.protocol_mut().send_close(code, reason);
            // A reader paused on a full queue waits on this.
            self.shared.changed.notify_all();
        }
    }

    /// Drop the connection at once, without the closing handshake: the transport is shut
    /// down; the connection is closed with 1006 unless the peer's close frame had arrived.
    pub fn abort(&self) {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if inner.session.closed().is_some() || inner.aborted {
            return;
        }
        inner.aborted = true;
        inner.session.set_cause(|| "aborted".into());
        let _ = inner.session.protocol_mut().receive_eof();
        inner.session.protocol_mut().discard_output();
        drop(inner);
        shared.kill();
    }

    /// Wait until the connection is closed, and return how. A closing handshake that takes
    /// longer than `close_timeout` is cut short: the transport is closed.
    pub fn wait_closed(&self) -> Closed {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        let mut deadline: Option<Instant> = None;
        loop {
            if let Some(closed) = inner.session.closed() {
                return closed.clone();
            }
            if inner.session.closing_soon() {
                // The reader thread enforces the close timeout when it wakes up; a reader
                // blocked in a long read is woken by closing the transport at the deadline.
                let now = Instant::now();
                let at =
                    *deadline.get_or_insert_with(|| now + inner.session.config().close_timeout);
                if now >= at {
                    inner
                        .session
                        .set_cause(|| "timed out waiting for the closing handshake".into());
                    drop(inner);
                    shared.kill();
                    inner = lock(&shared.inner);
                    inner = shared
                        .changed
                        .wait_timeout(inner, WRITE_POLL)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    continue;
                }
                inner = shared
                    .changed
                    .wait_timeout(inner, at - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            } else {
                inner = wait(&shared.changed, inner);
            }
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
        let inner = lock(&self.shared.inner);
        if inner.session.closed().is_some() {
            State::Closed
        } else {
            inner.session.protocol().state()
        }
    }

    /// Whether the connection is open: messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// The round-trip time measured by the last ping answered (keepalive or
    /// [`ping`](Self::ping)); zero before the first.
    pub fn latency(&self) -> Duration {
        lock(&self.shared.inner).session.latency()
    }

    /// The subprotocol negotiated during the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.shared.subprotocol.as_deref()
    }

    /// The value of type `T` that the server's handshake hooks stored for this connection
    /// with [`Handshake::insert`](super::server::Handshake::insert). `None` if there is none
    /// (always, on a client).
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.info.data.as_ref()?.get::<T>()
    }

    crate::data::info_accessors!();

    /// Whether permessage-deflate was negotiated for this connection.
    pub fn is_compressed(&self) -> bool {
        lock(&self.shared.inner).session.protocol().is_compressed()
    }

    /// The close code, once the connection is closed: the one received, 1006 if none.
    pub fn close_code(&self) -> Option<CloseCode> {
        lock(&self.shared.inner)
            .session
            .closed()
            .map(|closed| closed.code())
    }

    /// The close reason received, once the connection is closed.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.shared.inner)
            .session
            .closed()
            .map(|c| c.reason().to_owned())
    }

    /// The number of bytes waiting to be written.
    pub fn buffered_amount(&self) -> usize {
        lock(&self.shared.inner).session.buffered()
    }

    /// Queue `message` for a broadcast unless the connection is not open, is sending a
    /// fragmented message or its write buffer is above the high mark; it is written by the
    /// thread writing if there is one, or here without waiting more than once for a full
    /// socket (see [`Shared::flush_as`]). `false` when skipped.
    pub(crate) fn queue_broadcast(&self, message: &Message) -> bool {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        if inner.session.above_high_mark()
            || inner.session.fragmented_sender().is_some()
            || inner.session.protocol_mut().send_message(message).is_err()
        {
            return false;
        }
        drop(shared.flush_as(inner, Waiting::Once));
        true
    }
}

impl Shared {
    /// The end of a send: wait until everything queued so far (this thread's frames
    /// included) is written, writing it here unless another thread is writing.
    fn write_queued<'a>(&'a self, mut inner: MutexGuard<'a, Inner>) -> Result<()> {
        let mine = inner.taken + inner.session.protocol().bytes_to_send() as u64;
        loop {
            if inner.written >= mine {
                return Ok(());
            }
            if inner.session.closed().is_some() || self.dead.load(Ordering::Acquire) {
                return Err(closed_error(&inner));
            }
            if inner.writing {
                inner.waiting_writers += 1;
                inner = wait(&self.changed, inner);
                inner.waiting_writers -= 1;
            } else {
                inner = self.flush_as(inner, Waiting::Yes);
            }
        }
    }

    /// Write what is queued, unless another thread is writing (it writes this too, or a
    /// waiting sender does): see [`Waiting`] for how long it may take. The lock is released
    /// around each write.
    fn flush_as<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        waiting: Waiting,
    ) -> MutexGuard<'a, Inner> {
        if inner.writing || inner.session.closed().is_some() {
            return inner;
        }
        if waiting == Waiting::Once && !inner.leftover.is_empty() {
            return inner;
        }
        let deadline = match waiting {
            Waiting::Yes => None,
            Waiting::Once | Waiting::Reader => Some(Instant::now() + WRITE_POLL),
        };
        inner.writing = true;
        loop {
            let mut raw = std::mem::take(&mut inner.leftover);
            let data = inner.session.protocol_mut().take_data_to_send();
            if raw.is_empty() && data.is_empty() && !self.transport.wants_write() {
                break;
            }
            inner.taken += data.len() as u64;
            let end = inner.taken;
            inner.session.set_in_flight(raw.len() + data.len());
            drop(inner);
            let result = self.transport.seal(&data).and_then(|sealed| {
                match sealed {
                    Some(cipher) => raw.extend_from_slice(&cipher),
                    None => raw.extend_from_slice(&data),
                }
                match waiting {
                    Waiting::Yes => self
                        .transport
                        .write_raw(&raw, None, &|| self.writer_gives_up()),
                    Waiting::Once | Waiting::Reader => {
                        self.transport.write_raw(&raw, deadline, &|| true)
                    }
                }
            });
            inner = lock(&self.inner);
            inner.session.set_in_flight(0);
            let error = match result {
                Ok(n) if n == raw.len() => {
                    inner.written = end;
                    self.changed.notify_all();
                    // Senders waiting for their bytes take over; a thread that must not wait
                    // long stops at its deadline.
                    if inner.waiting_writers > 0
                        || deadline.is_some_and(|deadline| Instant::now() >= deadline)
                    {
                        break;
                    }
                    continue;
                }
                Ok(n) if waiting != Waiting::Yes && !self.dead.load(Ordering::Acquire) => {
                    // The socket does not take it: keep the rest for the next writer.
                    inner.leftover = raw[n..].to_vec();
                    let kept = inner.leftover.len();
                    inner.session.set_in_flight(kept);
                    break;
                }
                Ok(_) => io::Error::from(io::ErrorKind::TimedOut),
                Err(error) => error,
            };
            tracing::debug!(id = self.id, %error, "write failed");
            inner.session.set_cause(|| error.to_string());
            let _ = inner.session.protocol_mut().receive_eof();
            inner.session.protocol_mut().discard_output();
            inner.leftover = Vec::new();
            inner.writing = false;
            drop(inner);
            self.kill();
            return lock(&self.inner);
        }
        if inner.session.protocol().should_close_transport()
            && !inner.shutdown_sent
            && inner.leftover.is_empty()
            && inner.session.protocol().bytes_to_send() == 0
        {
            // A server closes the TCP connection first, once its close frame is out; still
            // the writer, with the lock released (TLS writes its close_notify).
            inner.shutdown_sent = true;
            drop(inner);
            self.transport.shutdown_write();
            inner = lock(&self.inner);
        }
        inner.writing = false;
        self.changed.notify_all();
        inner
    }

    /// A write made no progress for [`WRITE_POLL`]: run the deadlines (the reader may be the
    /// one blocked here), and give up if the transport was shut down meanwhile.
    fn writer_gives_up(&self) -> bool {
        if self.dead.load(Ordering::Acquire) {
            return true;
        }
        let mut inner = lock(&self.inner);
        let waiting = inner.receiving;
        let timeout = inner.session.handle_timeout(Instant::now(), waiting);
        drop(inner);
        if timeout.close_transport {
            self.kill();
            return true;
        }
        false
    }

    /// Shut the transport down both ways: a blocked read returns, blocked writes fail.
    fn kill(&self) {
        self.dead.store(true, Ordering::Release);
        let _ = self.transport.socket.shutdown(Shutdown::Both);
        self.changed.notify_all();
    }

    /// The reader thread: read, feed the protocol, queue what it parsed, answer through
    /// [`flush`](Self::flush), and run the deadlines through the read timeout, until the
    /// connection is closed.
    fn run_reader(self: Arc<Self>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_loop()));
        let mut inner = lock(&self.inner);
        if outcome.is_err() {
            // A bug, not the peer: whoever waits must still learn that the connection ended.
            tracing::error!(id = self.id, "the reader thread panicked");
            inner
                .session
                .set_cause(|| "the reader thread panicked".into());
            let _ = inner.session.protocol_mut().receive_eof();
        }
        // Closed: the transport goes; whoever waits learns how it ended.
        let (closed, cause) = inner.session.finish();
        match &cause {
            None => {
                tracing::debug!(id = self.id, code = %closed.code(), reason = closed.reason(), "connection closed");
            }
            Some(cause) => {
                tracing::debug!(id = self.id, code = %closed.code(), reason = closed.reason(), cause = cause.as_str(), "connection closed");
            }
        }
        drop(inner);
        self.dead.store(true, Ordering::Release);
        let _ = self.transport.socket.shutdown(Shutdown::Both);
        self.changed.notify_all();
    }

    /// The reader thread's loop, until the connection is closed.
    fn read_loop(&self) {
        let mut buf = vec![0u8; READ_BUF];
        let mut plain = Vec::new();
        let mut inner = lock(&self.inner);
        // Frames that arrived right behind the handshake were parsed with it, and the protocol
        // may have answered them already.
        self.process(&mut inner);
        inner = self.flush_as(inner, Waiting::Reader);
        loop {
            // The deadlines, and what they queued.
            let now = Instant::now();
            if inner.session.needs_timeout_check()
                || inner.session.poll_timeout().is_some_and(|at| at <= now)
            {
                let waiting = inner.receiving;
                let timeout = inner.session.handle_timeout(now, waiting);
                if timeout.close_transport {
                    tracing::debug!(id = self.id, "close timeout: closing the transport");
                    drop(inner);
                    self.kill();
                    inner = lock(&self.inner);
                    inner.eof = true;
                }
                inner = self.flush_as(inner, Waiting::Reader);
            }
            if inner.aborted || self.dead.load(Ordering::Acquire) {
                inner.eof = true;
            }
            let state = inner.session.protocol().state();
            let flushed = !inner.writing
                && inner.session.protocol().bytes_to_send() == 0
                && inner.leftover.is_empty();
            if inner.eof || (state == State::Closed && flushed) {
                if state != State::Closed {
                    let _ = inner.session.protocol_mut().receive_eof();
                    inner.session.protocol_mut().discard_output();
                }
                if !inner.writing || inner.eof {
                    break;
                }
            }
            if !inner.writing
                && (!inner.leftover.is_empty() || inner.session.protocol().bytes_to_send() > 0)
            {
                // What a broadcast or a close could not write without waiting, or only queued.
                inner = self.flush_as(inner, Waiting::Reader);
            }
            let deadline = inner.session.poll_timeout();
            // Reading stops at max_queue and resumes once a receiver has taken the queue down
            // to a quarter (the session's marks), as in the async layer.
            let blocked = (inner.session.read_paused() && !inner.session.should_resume_reading())
                || !inner.session.may_read()
                || inner.session.protocol().pending_failure().is_some()
                || inner.writing && state == State::Closed;
            if blocked {
                // The queue is full (or a failure waits for the receiver): wait for a taker,
                // or the next deadline, at most a READ_POLL.
                let wait = deadline.map_or(READ_POLL, |at| {
                    at.saturating_duration_since(Instant::now()).min(READ_POLL)
                });
                inner = self
                    .changed
                    .wait_timeout(inner, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                continue;
            }
            drop(inner);
            // At least once a READ_POLL: a close started by another thread (a dropped handle,
            // a closing server) gets its deadline, and bytes a broadcast left get written.
            let timeout = deadline
                .map_or(READ_POLL, |at| {
                    at.saturating_duration_since(Instant::now()).min(READ_POLL)
                })
                .max(Duration::from_millis(1));
            let _ = self.transport.socket.set_read_timeout(Some(timeout));
            plain.clear();
            let read = self.transport.read_into(&mut buf, &mut plain);
            inner = lock(&self.inner);
            match read {
                Ok(0) => {
                    inner.eof = true;
                    if let Err(error) = inner.session.protocol_mut().receive_eof() {
                        inner.session.set_cause(|| error.to_string());
                    }
                    self.process(&mut inner);
                }
                Ok(_) => {
                    if let Err(error) = inner.session.protocol_mut().receive_data(&plain) {
                        tracing::debug!(id = self.id, %error, "failing connection");
                        inner.session.set_cause(|| error.to_string());
                    }
                    self.process(&mut inner);
                    inner = self.flush_as(inner, Waiting::Reader);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    // A deadline (the loop runs it), or TLS records without data: the
                    // flush answers what TLS wants to say.
                    if self.transport.wants_write() {
                        inner = self.flush_as(inner, Waiting::Reader);
                    }
                }
                Err(error) => {
                    tracing::debug!(id = self.id, %error, "read failed");
                    inner.eof = true;
                    inner.session.set_cause(|| error.to_string());
                    let _ = inner.session.protocol_mut().receive_eof();
                    self.process(&mut inner);
                }
            }
        }
    }

    /// Queue what the protocol parsed, and wake whoever waits.
    fn process(&self, inner: &mut Inner) {
        let id = self.id;
        let queued = inner
            .session
            .handle_events(Instant::now, |event| match event {
                Event::Ping(data) => tracing::trace!(id, ?data, "ping received"),
                Event::Close(frame) => tracing::debug!(id, %frame, "close frame received"),
                _ => {}
            });
        if queued || inner.session.protocol().state() != State::Open {
            self.changed.notify_all();
        }
    }
}

fn wait<'a>(condvar: &Condvar, guard: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
    condvar
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn closed_error(inner: &Inner) -> Error {
    Error::ConnectionClosed(Box::new(inner.session.closed_so_far()))
}

fn send_error(inner: &Inner, error: wskit_proto::InvalidState) -> Error {
    match error {
        wskit_proto::InvalidState::WrongState(State::Closing | State::Closed) => {
            closed_error(inner)
        }
        other => Error::InvalidState(other),
    }
}

struct FragmentGuard<'a> {
    shared: &'a Shared,
    id: u32,
    finished: bool,
}

impl Drop for FragmentGuard<'_> {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared.inner);
        inner.session.release_fragmented(self.id, self.finished);
        drop(self.shared.flush_as(inner, Waiting::Once));
        self.shared.changed.notify_all();
    }
}

impl<'a> IntoIterator for &'a Connection {
    type Item = Result<Message>;
    type IntoIter = Messages<'a>;

    fn into_iter(self) -> Messages<'a> {
        Messages {
            connection: self,
            done: false,
        }
    }
}

/// The messages of a connection, as [`Connection::messages`] and `for message in &ws` give
/// them: ends quietly after a normal closure, with one `Err` after an abnormal one.
#[derive(Debug)]
pub struct Messages<'a> {
    connection: &'a Connection,
    done: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.connection.recv() {
            Ok(message) => Some(Ok(message)),
            Err(error) => {
                self.done = true;
                (!error.is_closed_ok()).then_some(Err(error))
            }
        }
    }
}

impl Connection {
    /// Iterate over the messages: `for message in ws.messages()` (or `for message in &ws`)
    /// ends quietly once the connection closed normally.
    pub fn messages(&self) -> Messages<'_> {
        self.into_iter()
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
        // The last handle: nobody can receive or send any more, so close (the reader thread
        // finishes the handshake).
        self.start_close(CloseCode::NORMAL, "");
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
