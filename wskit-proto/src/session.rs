//! A connection's session: what every I/O layer needs beyond the [`Protocol`], with no runtime,
//! no clock and no I/O of its own.
//!
//! The protocol turns bytes into events and messages into bytes. Around it, a connection that
//! applications use also needs:
//!
//! - a receive queue with a high and a low mark, so that a slow receiver pushes back on the
//!   peer (the I/O layer stops reading at [`ConnectionConfig::max_queue`] and resumes at a
//!   quarter of it: [`Session::may_read`], [`Session::should_resume_reading`]);
//! - one [`Assembler`] that turns the pieces of a fragmented message into the message;
//! - ping bookkeeping: pings awaiting their pong, the latency a pong measures, keepalive pings
//!   and their timeout;
//! - the deadlines of a closing connection (`close_timeout`), and when to apply a peer's
//!   protocol error that was held back (`Config::defer_failures`);
//! - the write buffer's marks (`write_limit`), and how the connection ended ([`Closed`]).
//!
//! [`Session`] holds all of it. Time is passed in, as quinn-proto does: the I/O layer asks
//! [`Session::poll_timeout`] when to come back, and calls [`Session::handle_timeout`] with the
//! current time when it does. The tokio layer (`wskit::Connection`) and the blocking layer
//! (`wskit::sync`) are both drivers of a session; a binding for another language can drive one
//! the same way.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use wskit_proto::session::{ConnectionConfig, Session};
//! use wskit_proto::{Config, Protocol, Request};
//!
//! // A client and a server, connected by hand.
//! let config = Config::default().with_streaming(true);
//! let mut client = Protocol::client(config.clone());
//! let mut server = Protocol::server(config);
//! let request = client.connect_request("localhost", "/");
//! client.send_request(&request).unwrap();
//! server.receive_data(&client.take_data_to_send()).unwrap();
//! let Some(wskit_proto::Event::Request(request)) = server.poll_event() else { panic!() };
//! let response = server.accept(&request).unwrap();
//! server.send_response(&response).unwrap();
//! client.receive_data(&server.take_data_to_send()).unwrap();
//!
//! let start = Instant::now();
//! let settings = Arc::new(ConnectionConfig::default());
//! let mut client: Session = Session::new(client, settings.clone(), start);
//! let mut server: Session = Session::new(server, settings, start);
//!
//! // A keepalive ping is due after 20 s.
//! assert_eq!(client.poll_timeout(), Some(start + Duration::from_secs(20)));
//! client.handle_timeout(start + Duration::from_secs(20), false);
//! let ping = client.protocol_mut().take_data_to_send();
//! server.protocol_mut().receive_data(&ping).unwrap();
//! server.handle_events(|| start, |_| {});
//! let pong = server.protocol_mut().take_data_to_send();
//! client.protocol_mut().receive_data(&pong).unwrap();
//! client.handle_events(|| start + Duration::from_millis(20_003), |_| {});
//! assert_eq!(client.latency(), Duration::from_millis(3));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{
    CloseCode, CloseFrame, Event, Fragment, InvalidState, Message, Protocol, ProtocolError, State,
    Utf8Bytes,
};

/// Settings that apply to an open connection, with Python websockets' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// The most incoming frames buffered before reading from the socket stops (TCP then
    /// pushes back on the peer). Reading resumes when the queue is down to a quarter.
    /// Default: 16.
    pub max_queue: usize,
    /// The write buffer size, in bytes, above which `send` waits (high mark). Default: 32 KiB.
    pub write_limit: usize,
    /// The write buffer size, in bytes, at which waiting sends resume (low mark).
    /// Default: a quarter of `write_limit`.
    pub write_limit_low: usize,
    /// How often to send a keepalive ping; `None` disables keepalive. Default: 20 s.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the pong of a keepalive ping before failing the connection with
    /// 1011; `None` waits forever. Default: 20 s.
    pub ping_timeout: Option<Duration>,
    /// How long to wait for the closing handshake and for the peer to close the TCP
    /// connection before closing it (dropping whatever could not be written by then, for a
    /// peer that stopped reading). Default: 10 s.
    pub close_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_queue: 16,
            write_limit: 32 << 10,
            write_limit_low: 8 << 10,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            close_timeout: Duration::from_secs(10),
        }
    }
}

impl ConnectionConfig {
    crate::setters! {
        max_queue, with_max_queue: usize;
        write_limit, with_write_limit: usize;
        write_limit_low, with_write_limit_low: usize;
        ping_interval, with_ping_interval: Option<Duration>;
        ping_timeout, with_ping_timeout: Option<Duration>;
        close_timeout, with_close_timeout: Duration;
    }
}

/// How a connection closed: the close frames sent and received (RFC 6455 section 7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// The close frame received, if any.
    pub rcvd: Option<CloseFrame>,
    /// The close frame sent, if any.
    pub sent: Option<CloseFrame>,
    /// When both were exchanged: whether the received one came first.
    pub rcvd_then_sent: Option<bool>,
}

impl Closed {
    /// The close frames a protocol exchanged so far.
    pub fn of(protocol: &Protocol) -> Self {
        Self {
            rcvd: protocol.close_rcvd().cloned(),
            sent: protocol.close_sent().cloned(),
            rcvd_then_sent: protocol.close_rcvd_then_sent(),
        }
    }

    /// Whether the connection closed normally: a close frame with code 1000 or 1001 was both
    /// received and sent.
    pub fn is_ok(&self) -> bool {
        let normal =
            |frame: &Option<CloseFrame>| frame.as_ref().is_some_and(|f| f.code.is_normal());
        normal(&self.rcvd) && normal(&self.sent)
    }

    /// The close code of the connection (RFC 6455 section 7.1.5): the one received, 1006 if
    /// no close frame was received.
    pub fn code(&self) -> CloseCode {
        self.rcvd.as_ref().map_or(CloseCode::ABNORMAL, |f| f.code)
    }

    /// The close reason received, empty if none.
    pub fn reason(&self) -> &str {
        self.rcvd.as_ref().map_or("", |f| f.reason.as_str())
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rcvd, &self.sent) {
            (None, None) => f.write_str("no close frame received or sent"),
            (None, Some(sent)) => write!(f, "sent {sent}; no close frame received"),
            (Some(rcvd), None) => write!(f, "received {rcvd}; no close frame sent"),
            (Some(rcvd), Some(sent)) if self.rcvd_then_sent == Some(false) => {
                write!(f, "sent {sent}; then received {rcvd}")
            }
            (Some(rcvd), Some(sent)) => write!(f, "received {rcvd}; then sent {sent}"),
        }
    }
}

// ===== Assembler =====

/// Turns the pieces of a message ([`Fragment`]s) into the message: the one place where
/// messages are reassembled, used by the protocol's whole-message mode and by [`Session`].
///
/// A message in one piece goes through without a copy. Text is checked to be UTF-8 when the
/// message is complete: pieces taken elsewhere (an application that took the first pieces
/// itself) cannot make invalid text pass.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The message so far (boxed: most connections are not in the middle of one).
    partial: Option<Box<Partial>>,
}

#[derive(Debug)]
struct Partial {
    is_text: bool,
    data: Vec<u8>,
}

impl Assembler {
    /// An assembler with no message in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a message is in progress (some of its pieces were pushed, not the last).
    #[inline]
    pub fn is_assembling(&self) -> bool {
        self.partial.is_some()
    }

    /// Add the next piece of the message. Returns the message once its last piece is added.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidUtf8`] when the pieces of a text message do not make UTF-8
    /// (only when they did not all come, in order, from one protocol).
    #[inline]
    pub fn push(&mut self, fragment: Fragment) -> Option<Result<Message, ProtocolError>> {
        if self.partial.is_none() && fragment.is_first() && fragment.is_fin() {
            // A message in one piece (the common case, kept inline): validated whole by the
            // protocol, no copy.
            return Some(Ok(fragment.into_message().unwrap_or_else(|_| {
                unreachable!("a first and last piece is a message")
            })));
        }
        self.push_piece(fragment)
    }

    /// [`push`](Self::push) of a piece of a message in several.
    #[inline(never)]
    fn push_piece(&mut self, fragment: Fragment) -> Option<Result<Message, ProtocolError>> {
        let (is_text, data) = self.append(fragment)?;
        Some(if is_text {
            // The protocol validated the pieces as a stream; checking again is cheap (SIMD),
            // and it keeps a sequence that was cut or mixed from passing as text.
            Utf8Bytes::try_from(data)
                .map(Message::Text)
                .map_err(|_| ProtocolError::InvalidUtf8)
        } else {
            Ok(Message::Binary(data))
        })
    }

    /// [`push`](Self::push) for the protocol's own pieces, all of one message, in order, the
    /// first included: their text was validated as one stream, so it is not checked again.
    pub(crate) fn push_validated(&mut self, fragment: Fragment) -> Option<Message> {
        let (is_text, data) = self.append(fragment)?;
        Some(if is_text {
            Message::Text(Utf8Bytes::from_validated(data))
        } else {
            Message::Binary(data)
        })
    }

    /// The message's type and data once `fragment` completes it.
    fn append(&mut self, fragment: Fragment) -> Option<(bool, Bytes)> {
        if self.partial.is_none() {
            // A message in one piece: no copy.
            let fragment = match fragment.into_message() {
                Ok(message) => return Some((message.is_text(), message.into_bytes())),
                Err(fragment) => fragment,
            };
            self.partial = Some(Box::new(Partial {
                is_text: fragment.is_text(),
                data: Vec::new(),
            }));
            return self.append(fragment);
        }
        let partial = self.partial.as_mut()?;
        partial.data.extend_from_slice(fragment.data());
        if !fragment.is_fin() {
            return None;
        }
        let Partial { is_text, data } = *self.partial.take()?;
        Some((is_text, Bytes::from(data)))
    }

    /// Drop the message in progress, if any.
    pub fn clear(&mut self) {
        self.partial = None;
    }
}

// ===== Session =====

/// What wakes whoever waits for the pong of a ping sent with [`Session::send_ping`]: a channel's
/// sender, a condition variable... The session calls [`answered`](Self::answered) when the pong
/// comes, and drops the waiter unanswered if the connection closes first.
pub trait PingWaiter {
    /// The pong came, `latency` after the ping was sent.
    fn answered(self, latency: Duration);
}

/// No one waits (keepalive pings, or a layer that only reads [`Session::latency`]).
impl PingWaiter for () {
    fn answered(self, _: Duration) {}
}

/// A ping awaiting its pong.
struct Ping<W> {
    payload: Bytes,
    sent_at: Instant,
    waiter: Option<W>,
    keepalive: bool,
}

/// The deadlines of a closing or failing connection (boxed: most of a connection's life is
/// spent without them).
#[derive(Default)]
struct ClosingDeadlines {
    /// When the transport is closed if the closing handshake has not finished.
    close: Option<Instant>,
    /// Since when a peer's protocol error has been held back.
    failure_pending_since: Option<Instant>,
}

/// How long a peer's protocol error is held back while the application is not receiving (see
/// `Config::defer_failures`, whose docs state this value): long enough for a handler busy with
/// the messages before the error to answer them, short enough that a peer that broke the
/// protocol does not keep its connection.
pub const FAILURE_GRACE: Duration = Duration::from_secs(1);

/// What [`Session::handle_timeout`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeout {
    /// Something happened: a ping to send, the connection failed or must close. The I/O layer
    /// writes what the protocol has to send and checks its state.
    pub fired: bool,
    /// The close timeout expired: the protocol is CLOSED and its output discarded. The I/O
    /// layer drops what it was writing and closes the transport.
    pub close_transport: bool,
}

/// Why [`Session::send_ping`] did not send.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingError {
    /// A ping with the same payload is awaiting its pong.
    Duplicate,
    /// The protocol cannot send it (not open, or the payload is longer than 125 bytes).
    InvalidState(InvalidState),
}

/// A connection's session: the protocol and what every I/O layer needs around it. See the
/// [module docs](self).
///
/// `W` is what waits for a pong ([`PingWaiter`]); `()` when nothing does.
pub struct Session<W = ()> {
    protocol: Protocol,
    config: Arc<ConnectionConfig>,
    /// The pieces received and not yet taken, in order.
    queue: VecDeque<Fragment>,
    /// A message being assembled from pieces already taken off the queue, so that a receiver
    /// that gives up in the middle loses nothing and a long message cannot fill the queue.
    assembler: Assembler,
    /// Reading stopped because the queue was full.
    read_paused: bool,
    pings: VecDeque<Ping<W>>,
    /// The last round-trip time, in nanoseconds (a `Duration` takes twice the room).
    latency_nanos: u64,
    next_ping: Option<Instant>,
    closing: Option<Box<ClosingDeadlines>>,
    /// Bytes taken from the protocol by the I/O layer and not yet written.
    in_flight: usize,
    /// The id of the sender that owns the fragmented message being sent; 0 for none.
    fragmented_sender: u32,
    next_sender_id: u32,
    /// Why the connection ended abnormally, for the log.
    cause: Option<Box<str>>,
    /// Set by [`finish`](Self::finish), once the transport is closed.
    closed: Option<Box<Closed>>,
}

impl<W: PingWaiter> Session<W> {
    /// The session of an open `protocol` (its handshake done), at `now`: the first keepalive
    /// ping is due one `ping_interval` later. The protocol should be in streaming mode
    /// (`Config::streaming`): the session assembles messages itself; whole messages are
    /// queued as one piece.
    pub fn new(protocol: Protocol, config: Arc<ConnectionConfig>, now: Instant) -> Self {
        let next_ping = config.ping_interval.map(|every| now + every);
        Self {
            protocol,
            config,
            queue: VecDeque::new(),
            assembler: Assembler::new(),
            read_paused: false,
            pings: VecDeque::new(),
            latency_nanos: 0,
            next_ping,
            closing: None,
            in_flight: 0,
            fragmented_sender: 0,
            next_sender_id: 0,
            cause: None,
            closed: None,
        }
    }

    /// The protocol.
    #[inline]
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// The protocol, to feed it bytes, send, or take its output.
    #[inline]
    pub fn protocol_mut(&mut self) -> &mut Protocol {
        &mut self.protocol
    }

    /// The settings.
    #[inline]
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    // ----- receiving -----

    /// Take the protocol's events after it was fed: queue the pieces of messages, and let the
    /// pongs acknowledge their pings (`now` is read only then). `observe` sees each event
    /// first (for a log). Returns whether something was queued.
    pub fn handle_events(
        &mut self,
        now: impl Fn() -> Instant,
        mut observe: impl FnMut(&Event),
    ) -> bool {
        let mut queued = false;
        while let Some(event) = self.protocol.poll_event() {
            observe(&event);
            match event {
                Event::Fragment(fragment) => {
                    self.queue.push_back(fragment);
                    queued = true;
                }
                Event::Message(message) => {
                    let is_text = message.is_text();
                    let data = message.into_bytes();
                    self.queue
                        .push_back(Fragment::new(is_text, true, true, data));
                    queued = true;
                }
                Event::Pong(data) => self.acknowledge_pings(&data, &now),
                _ => {}
            }
        }
        queued
    }

    /// A pong acknowledges the ping with the same payload and every ping sent before it.
    fn acknowledge_pings(&mut self, data: &[u8], now: &impl Fn() -> Instant) {
        let Some(position) = self.pings.iter().position(|p| p.payload == data) else {
            return;
        };
        let now = now();
        for ping in self.pings.drain(..=position) {
            let latency = now.saturating_duration_since(ping.sent_at);
            if let Some(waiter) = ping.waiter {
                waiter.answered(latency);
            }
            self.latency_nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        }
    }

    /// Take the next piece off the receive queue.
    #[inline]
    pub fn pop_fragment(&mut self) -> Option<Fragment> {
        self.queue.pop_front()
    }

    /// Take the next whole message off the receive queue, assembling its pieces; `None` if
    /// it has not arrived whole yet (the pieces taken are kept until it has).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidUtf8`] if the application took the first pieces of a text
    /// message with [`pop_fragment`](Self::pop_fragment) and the rest do not make UTF-8.
    #[inline]
    pub fn pop_message(&mut self) -> Option<Result<Message, ProtocolError>> {
        while let Some(fragment) = self.queue.pop_front() {
            if let Some(message) = self.assembler.push(fragment) {
                return Some(message);
            }
        }
        None
    }

    /// Add a piece taken with [`pop_fragment`](Self::pop_fragment) to the message being
    /// assembled: the message once it is whole (as [`pop_message`](Self::pop_message)).
    ///
    /// # Errors
    ///
    /// As [`Assembler::push`].
    #[inline]
    pub fn assemble(&mut self, fragment: Fragment) -> Option<Result<Message, ProtocolError>> {
        self.assembler.push(fragment)
    }

    /// Whether a message is being assembled from pieces taken off the queue.
    #[inline]
    pub fn is_assembling(&self) -> bool {
        self.assembler.is_assembling()
    }

    /// The number of pieces in the receive queue.
    #[inline]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether the I/O layer may read from the transport now: `false` while the receive queue
    /// is at its high mark (`max_queue`). Records the pause, for
    /// [`should_resume_reading`](Self::should_resume_reading).
    #[inline]
    pub fn may_read(&mut self) -> bool {
        self.read_paused = self.queue.len() >= self.config.max_queue;
        !self.read_paused
    }

    /// Whether reading stopped at the high mark (as of the last
    /// [`may_read`](Self::may_read)).
    #[inline]
    pub fn read_paused(&self) -> bool {
        self.read_paused
    }

    /// Forget a pause (reading is about to be tried again).
    #[inline]
    pub fn clear_read_paused(&mut self) {
        self.read_paused = false;
    }

    /// Whether reading stopped at the high mark and the queue is down to the low mark (a
    /// quarter of `max_queue`): time to wake the reader.
    #[inline]
    pub fn should_resume_reading(&self) -> bool {
        self.read_paused && self.queue.len() <= self.config.max_queue / 4
    }

    /// Whether the queue just reached the low mark while reading is paused: the moment one
    /// taker wakes the reader (exactly once per pause).
    #[inline]
    pub fn at_low_mark(&self) -> bool {
        self.read_paused && self.queue.len() == self.config.max_queue / 4
    }

    // ----- sending -----

    /// Bytes waiting to be written: in the protocol's buffer and in flight in the I/O layer.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.protocol.bytes_to_send() + self.in_flight
    }

    /// Bytes the I/O layer took from the protocol and has not written yet.
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Record what the I/O layer holds unwritten.
    #[inline]
    pub fn set_in_flight(&mut self, bytes: usize) {
        self.in_flight = bytes;
    }

    /// Whether the write buffer is above the high mark (`write_limit`): a sender waits.
    #[inline]
    pub fn above_high_mark(&self) -> bool {
        self.buffered() > self.config.write_limit
    }

    /// Whether the write buffer is down to the low mark (`write_limit_low`): waiting senders
    /// resume.
    #[inline]
    pub fn at_or_below_low_mark(&self) -> bool {
        self.buffered() <= self.config.write_limit_low
    }

    /// A new id for a sender of a fragmented message (never 0).
    pub fn next_sender_id(&mut self) -> u32 {
        self.next_sender_id = self.next_sender_id.wrapping_add(1).max(1);
        self.next_sender_id
    }

    /// The sender that owns the fragmented message being sent, if any: other messages wait.
    #[inline]
    pub fn fragmented_sender(&self) -> Option<u32> {
        (self.fragmented_sender != 0).then_some(self.fragmented_sender)
    }

    /// Take the fragmented-message slot for sender `id`; `false` if another sender has it.
    pub fn claim_fragmented(&mut self, id: u32) -> bool {
        match self.fragmented_sender {
            0 => {
                self.fragmented_sender = id;
                true
            }
            owner => owner == id,
        }
    }

    /// Give the slot back, if `id` has it. If the message was not `finished` and the
    /// connection is open, it is failed with 1011: nobody else can finish a half-sent message.
    pub fn release_fragmented(&mut self, id: u32, finished: bool) {
        if self.fragmented_sender == id {
            self.fragmented_sender = 0;
        }
        if !finished && self.protocol.state() == State::Open {
            self.protocol
                .fail(CloseCode::INTERNAL_ERROR, "fragmented message abandoned");
        }
    }

    /// Queue a ping with `payload` (at most 125 bytes), sent at `now`; `waiter` is told the
    /// latency when its pong comes.
    ///
    /// # Errors
    ///
    /// [`PingError::Duplicate`] if a ping with the same payload is awaiting its pong, and
    /// [`PingError::InvalidState`] if the protocol cannot send it.
    pub fn send_ping(
        &mut self,
        payload: Bytes,
        now: Instant,
        waiter: Option<W>,
    ) -> Result<(), PingError> {
        if self.pings.iter().any(|p| p.payload == payload) {
            return Err(PingError::Duplicate);
        }
        self.protocol
            .send_ping(&payload)
            .map_err(PingError::InvalidState)?;
        self.pings.push_back(Ping {
            payload,
            sent_at: now,
            waiter,
            keepalive: false,
        });
        Ok(())
    }

    /// The round-trip time measured by the last ping answered; zero before the first.
    #[inline]
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos)
    }

    // ----- time -----

    /// Whether the connection should end within `close_timeout`: the closing handshake is
    /// under way or the connection failed (the peer should close the transport), or it is
    /// closed and only what is left to write keeps the transport open (a peer that ended its
    /// side and stopped reading would otherwise keep it forever).
    #[inline]
    pub fn closing_soon(&self) -> bool {
        self.protocol.close_expected() || self.protocol.state() == State::Closed
    }

    fn close_deadline(&self) -> Option<Instant> {
        self.closing.as_ref()?.close
    }

    /// Whether something new needs a deadline that [`poll_timeout`](Self::poll_timeout) does
    /// not give yet (the closing handshake started, or a peer's error is held back): call
    /// [`handle_timeout`](Self::handle_timeout) now. Cheap, without the clock: when this is
    /// `false`, nothing happens before the deadline already known.
    #[inline]
    pub fn needs_timeout_check(&self) -> bool {
        self.close_deadline_unset() || self.protocol.pending_failure().is_some()
    }

    /// Whether a deadline may be set (keepalive, close, ping timeout, a held-back failure):
    /// when this is `false`, [`poll_timeout`](Self::poll_timeout) is `None`. Cheaper than
    /// asking it.
    #[inline]
    pub fn has_deadlines(&self) -> bool {
        self.next_ping.is_some() || self.closing.is_some() || !self.pings.is_empty()
    }

    /// Whether the connection should end within `close_timeout` and its deadline is not set
    /// yet: [`handle_timeout`](Self::handle_timeout) sets it.
    #[inline]
    pub fn close_deadline_unset(&self) -> bool {
        self.closing_soon() && self.close_deadline().is_none()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, if ever: the
    /// earliest of the close deadline, the end of a held-back failure's grace, the next
    /// keepalive ping, and the oldest keepalive ping's timeout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.close_deadline();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        // Only the deadlines that still apply: one in the past that handle_timeout would not
        // clear would have the I/O layer come back at once, again and again.
        if self.protocol.pending_failure().is_some()
            && let Some(since) = self.closing.as_ref().and_then(|c| c.failure_pending_since)
        {
            consider(since + FAILURE_GRACE);
        }
        if let Some(at) = self.next_ping {
            consider(at);
        }
        if let Some(timeout) = self.config.ping_timeout
            && self.protocol.state() == State::Open
            && let Some(oldest) = self.pings.iter().find(|p| p.keepalive)
        {
            consider(oldest.sent_at + timeout);
        }
        next
    }

    /// Do what is due at `now`: apply a held-back failure (at once if
    /// `receiver_waiting`, that is, the application took every message and waits for more;
    /// after [`FAILURE_GRACE`] otherwise), arm the close deadline of a closing connection and
    /// close at it, fail the connection with 1011 when a keepalive ping's pong is late, and
    /// send keepalive pings.
    pub fn handle_timeout(&mut self, now: Instant, receiver_waiting: bool) -> Timeout {
        let mut result = Timeout::default();
        if self.protocol.pending_failure().is_some() {
            let waiting = receiver_waiting && self.queue.is_empty();
            let closing = self.closing.get_or_insert_default();
            let since = *closing.failure_pending_since.get_or_insert(now);
            if waiting || now >= since + FAILURE_GRACE {
                if let Some(error) = self.protocol.apply_pending_failure() {
                    self.cause.get_or_insert_with(|| error.to_string().into());
                }
                closing.failure_pending_since = None;
                result.fired = true;
            }
        }
        if self.closing_soon() && self.close_deadline().is_none() {
            self.closing.get_or_insert_default().close = Some(now + self.config.close_timeout);
        }
        if let Some(deadline) = self.close_deadline()
            && now >= deadline
        {
            self.cause
                .get_or_insert_with(|| "timed out waiting for the closing handshake".into());
            let _ = self.protocol.receive_eof();
            // A peer that stopped reading would otherwise keep the connection for as long as
            // the unwritten output (the close frame behind it) cannot be written: drop it.
            self.protocol.discard_output();
            self.in_flight = 0;
            if let Some(closing) = &mut self.closing {
                closing.close = None;
            }
            result.fired = true;
            result.close_transport = true;
        }
        // Ping timeout: the oldest keepalive ping still unanswered.
        if let Some(timeout) = self.config.ping_timeout
            && self.protocol.state() == State::Open
            && self
                .pings
                .iter()
                .any(|p| p.keepalive && now >= p.sent_at + timeout)
        {
            self.cause
                .get_or_insert_with(|| "keepalive ping timeout".into());
            self.protocol
                .fail(CloseCode::INTERNAL_ERROR, "keepalive ping timeout");
            self.pings.retain(|p| !p.keepalive);
            result.fired = true;
        }
        if let (Some(every), Some(at)) = (self.config.ping_interval, self.next_ping)
            && now >= at
        {
            self.next_ping = Some(now + every);
            if self.protocol.state() == State::Open {
                let mut payload = [0; 4];
                if getrandom::fill(&mut payload).is_ok()
                    && self.protocol.send_ping(&payload).is_ok()
                {
                    self.pings.push_back(Ping {
                        payload: Bytes::copy_from_slice(&payload),
                        sent_at: now,
                        waiter: None,
                        keepalive: true,
                    });
                }
            }
            result.fired = true;
        }
        result
    }

    // ----- the end -----

    /// Why the connection ended abnormally, if known (a read error, a timeout...).
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// Record why the connection is ending abnormally, unless a cause is known already.
    pub fn set_cause(&mut self, cause: impl FnOnce() -> String) {
        self.cause.get_or_insert_with(|| cause().into());
    }

    /// How the connection closed, once [`finish`](Self::finish) was called.
    #[inline]
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_deref()
    }

    /// How the connection closed, or the close frames exchanged so far.
    pub fn closed_so_far(&self) -> Closed {
        match &self.closed {
            Some(closed) => Closed::clone(closed),
            None => Closed::of(&self.protocol),
        }
    }

    /// The transport is closed: record how the connection ended, drop the waiters of pings
    /// without their pong, and let go of every buffer. Returns how it closed and the cause.
    pub fn finish(&mut self) -> (Closed, Option<String>) {
        let closed = self.closed_so_far();
        self.closed = Some(Box::new(closed.clone()));
        self.in_flight = 0;
        // Nothing more is read or written: let go of the buffers (a payload queued out of
        // line, the start of a frame that never finished) while handles may live on.
        self.protocol.discard_output();
        self.protocol.discard_input();
        self.pings.clear();
        self.release_buffers();
        (closed, self.cause.take().map(String::from))
    }

    /// Let go of the buffers that hold nothing: the protocol's (read, write, compression,
    /// events) and the receive and ping queues.
    pub fn release_buffers(&mut self) {
        self.protocol.release_buffers();
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if self.pings.is_empty() {
            self.pings = VecDeque::new();
        }
    }
}

impl<W> fmt::Debug for Session<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.protocol.role())
            .field("state", &self.protocol.state())
            .field("queued", &self.queue.len())
            .field(
                "buffered",
                &(self.protocol.bytes_to_send() + self.in_flight),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_ok_needs_normal_codes_both_ways() {
        let normal = Closed {
            rcvd: Some(CloseFrame::new(1000, "")),
            sent: Some(CloseFrame::new(1001, "")),
            rcvd_then_sent: Some(true),
        };
        assert!(normal.is_ok());
        assert_eq!(
            normal.to_string(),
            "received 1000 (OK); then sent 1001 (going away)"
        );
        let abnormal = Closed {
            rcvd: None,
            ..normal.clone()
        };
        assert!(!abnormal.is_ok());
        assert_eq!(abnormal.code(), CloseCode::ABNORMAL);
        let error = Closed {
            rcvd: Some(CloseFrame::new(1011, "oops")),
            ..normal
        };
        assert!(!error.is_ok());
        assert_eq!(error.reason(), "oops");
    }

    /// A client and a server session, open, connected by hand.
    fn pair(config: ConnectionConfig) -> (Session, Session, Instant) {
        let settings = crate::Config::default().with_streaming(true);
        let mut client = Protocol::client(settings.clone());
        let mut server = Protocol::server(settings);
        let request = client.connect_request("localhost", "/");
        client.send_request(&request).unwrap();
        server.receive_data(&client.take_data_to_send()).unwrap();
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("no request")
        };
        let response = server.accept(&request).unwrap();
        server.send_response(&response).unwrap();
        client.receive_data(&server.take_data_to_send()).unwrap();
        let _ = client.poll_event();
        let start = Instant::now();
        let config = Arc::new(config);
        (
            Session::new(client, Arc::clone(&config), start),
            Session::new(server, config, start),
            start,
        )
    }

    #[test]
    fn no_deadline_stays_in_the_past_once_handled() {
        // A keepalive ping goes unanswered, then the application closes before its timeout:
        // the ping's timeout no longer applies (the close timeout does), so after
        // handle_timeout the next deadline is never behind us.
        let config = ConnectionConfig::default();
        let (mut client, _server, start) = pair(config);
        let ping_at = start + Duration::from_secs(20);
        assert!(client.handle_timeout(ping_at, false).fired);
        client
            .protocol_mut()
            .send_close(CloseCode::NORMAL, "")
            .unwrap();
        let closing_at = ping_at + Duration::from_secs(15);
        client.handle_timeout(closing_at, false);
        for step in 0..200 {
            let now = closing_at + Duration::from_millis(step * 50);
            client.handle_timeout(now, false);
            if let Some(next) = client.poll_timeout() {
                assert!(
                    next > now,
                    "a deadline in the past at {step}: {next:?} <= {now:?}"
                );
            }
        }
    }

    #[test]
    fn pongs_measure_latency_and_acknowledge_earlier_pings() {
        let (mut client, mut server, start) = pair(ConnectionConfig::default());
        let (tx1, rx1) = std::sync::mpsc::channel();
        struct Tx(std::sync::mpsc::Sender<Duration>);
        impl PingWaiter for Tx {
            fn answered(self, latency: Duration) {
                self.0.send(latency).unwrap();
            }
        }
        let mut client: Session<Tx> = Session::new(
            std::mem::replace(
                client.protocol_mut(),
                Protocol::client(crate::Config::default()),
            ),
            Arc::new(ConnectionConfig::default()),
            start,
        );
        let (tx2, rx2) = std::sync::mpsc::channel();
        client
            .send_ping(Bytes::from_static(b"one"), start, Some(Tx(tx1)))
            .unwrap();
        let later = start + Duration::from_millis(5);
        client
            .send_ping(Bytes::from_static(b"two"), later, Some(Tx(tx2)))
            .unwrap();
        assert_eq!(
            client.send_ping(Bytes::from_static(b"two"), later, None),
            Err(PingError::Duplicate)
        );
        // The server answers only the second: it acknowledges both.
        server
            .protocol_mut()
            .receive_data(&client.protocol_mut().take_data_to_send())
            .unwrap();
        server.handle_events(|| later, |_| {});
        let pongs = server.protocol_mut().take_data_to_send();
        let second_pong = &pongs[pongs.len() / 2..];
        client.protocol_mut().receive_data(second_pong).unwrap();
        client.handle_events(|| start + Duration::from_millis(30), |_| {});
        assert_eq!(rx1.try_recv(), Ok(Duration::from_millis(30)));
        assert_eq!(rx2.try_recv(), Ok(Duration::from_millis(25)));
        assert_eq!(client.latency(), Duration::from_millis(25));
    }

    #[test]
    fn reading_stops_at_the_high_mark_and_resumes_at_a_quarter() {
        let config = ConnectionConfig::default().with_max_queue(8);
        let (mut client, mut server, start) = pair(config);
        for n in 0..8u8 {
            client.protocol_mut().send_binary(&[n], true).unwrap();
        }
        server
            .protocol_mut()
            .receive_data(&client.protocol_mut().take_data_to_send())
            .unwrap();
        assert!(server.handle_events(|| start, |_| {}));
        assert!(!server.may_read(), "8 queued: the high mark");
        assert!(server.read_paused());
        let mut resumed_at = None;
        for taken in 1..=8 {
            assert!(server.pop_message().is_some());
            if server.at_low_mark() {
                resumed_at.get_or_insert(taken);
            }
            assert_eq!(
                server.should_resume_reading(),
                server.queued() <= 2,
                "{taken}"
            );
        }
        // A receiver wakes the reader once, when the queue is down to a quarter (2 of 8).
        assert_eq!(resumed_at, Some(6));
        assert!(server.may_read());
    }
}
