//! The connection state machine: [`Protocol`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::error::{Error, HandshakeError, InvalidState, ProtocolError};
use crate::extensions::{DeflateConfig, PerMessageDeflate, parse_extensions};
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, RSV1, write_frame};
use crate::handshake::{
    HttpVersion, Request, Response, accept_key, check_extended_connect, check_request,
    check_response, generate_key, header_tokens,
};
use crate::limits::Limits;
use crate::mask::apply_mask;
use crate::message::{Message, Utf8Bytes};
use crate::output::{OUT_OF_LINE_MIN, Output};
use crate::session::Assembler;
use crate::utf8::{Utf8Validator, is_valid};

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that opened the connection and masks its frames.
    Client,
    /// The end that accepted the connection.
    Server,
}

/// The state of a connection (RFC 6455 sections 4 and 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; the closing handshake is in progress.
    Closing,
    /// The closing handshake is complete, the connection failed, or the transport ended.
    Closed,
}

/// Settings of a [`Protocol`], with Python websockets' defaults.
///
/// Start from [`Config::default`] and set fields, or chain the `with_*` methods:
///
/// ```
/// use wskit_proto::{Config, Limits};
/// let config = Config::default()
///     .with_compression(None)
///     .with_limits(Limits::default().with_max_message_size(Some(64 << 10)));
/// assert_eq!(config.limits.max_message_size, Some(65_536));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Limits on what the peer sends. Default: [`Limits::default`] (1 MiB messages).
    pub limits: Limits,
    /// permessage-deflate settings; `None` turns compression off.
    /// Default: on, with [`DeflateConfig::default`].
    pub compression: Option<DeflateConfig>,
    /// Subprotocols: offered by a client, or supported by a server in order of preference.
    /// Default: none.
    pub subprotocols: Vec<String>,
    /// Deliver data frames as [`Event::Fragment`]s as they arrive instead of reassembled
    /// [`Event::Message`]s. Default: `false`.
    pub streaming: bool,
    /// Client only: the `Origin` header to send. Default: none.
    pub origin: Option<String>,
    /// Client only: the `User-Agent` header to send. Default: `wskit/VERSION`.
    pub user_agent: Option<String>,
    /// Extra header fields added to the client's request or the server's 101 response.
    pub extra_headers: Vec<(String, String)>,
    /// Hold back the failure caused by a peer's protocol error until the I/O layer calls
    /// [`Protocol::apply_pending_failure`], so that an application can still answer the
    /// messages that arrived before the bad frame (Autobahn's "strict" behaviour). Parsing stops
    /// at the error either way. Default: `false` (fail at once).
    ///
    /// When to apply it is the I/O layer's policy, and it must apply it eventually: while the
    /// failure is held back, nothing more is read and the connection stays open. The `wskit`
    /// crate turns this on and applies the failure as soon as the application waits for a
    /// message it has not got (it has taken every message before the error), or after a grace
    /// of 1 s if the application is not receiving at all.
    pub defer_failures: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            compression: Some(DeflateConfig::default()),
            subprotocols: Vec::new(),
            streaming: false,
            origin: None,
            user_agent: Some(concat!("wskit/", env!("CARGO_PKG_VERSION")).to_owned()),
            extra_headers: Vec::new(),
            defer_failures: false,
        }
    }
}

impl Config {
    setters! {
        limits, with_limits: Limits;
        compression, with_compression: Option<DeflateConfig>;
        subprotocols, with_subprotocols: Vec<String>;
        streaming, with_streaming: bool;
        origin, with_origin: Option<String>;
        user_agent, with_user_agent: Option<String>;
        extra_headers, with_extra_headers: Vec<(String, String)>;
        defer_failures, with_defer_failures: bool;
    }
}

/// What the peer did, drained with [`Protocol::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: the client's opening handshake request. Answer it with [`Protocol::accept`] or
    /// [`Protocol::reject`], then [`Protocol::send_response`].
    Request(Box<Request>),
    /// Client: the server's handshake response. The state is now OPEN if it was accepted, or
    /// CLOSED (and [`Protocol::receive_data`] returned the error) if not.
    Response(Box<Response>),
    /// A complete message.
    Message(Message),
    /// In streaming mode ([`Config::streaming`]): a piece of a message, inflated.
    Fragment(Fragment),
    /// A ping; the protocol has already queued the pong.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame (code 1005 if it had no payload). The protocol has already
    /// answered it.
    Close(CloseFrame),
}

/// A piece of a message in streaming mode.
///
/// Made only by the protocol: its fields are private, so that a text piece is always what the
/// UTF-8 validator let through (a whole message in one piece is valid UTF-8, so
/// [`into_message`](Self::into_message) can wrap it without validating again). A piece cannot be
/// built from outside the crate:
///
/// ```compile_fail,E0451
/// use wskit_proto::Fragment;
/// let fake = Fragment { is_text: true, first: true, fin: true, data: bytes::Bytes::new() };
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    is_text: bool,
    first: bool,
    fin: bool,
    data: Bytes,
}

impl Fragment {
    /// A piece the protocol validated: text pieces passed the stream's UTF-8 validator, and a
    /// text piece with `first && fin` is a whole valid message.
    pub(crate) fn new(is_text: bool, first: bool, fin: bool, data: Bytes) -> Self {
        debug_assert!(!(is_text && first && fin) || std::str::from_utf8(&data).is_ok());
        Self {
            is_text,
            first,
            fin,
            data,
        }
    }

    /// Whether the message is text. Text pieces are validated UTF-8 as a stream, but a piece
    /// may end in the middle of a code point.
    pub fn is_text(&self) -> bool {
        self.is_text
    }

    /// Whether this is the first piece of the message.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.first
    }

    /// Whether this is the last piece of the message.
    #[inline]
    pub fn is_fin(&self) -> bool {
        self.fin
    }

    /// The data, decompressed.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The data, decompressed, without copying.
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// A whole message in one piece (`first && fin`) as a [`Message`], without copying or
    /// validating again; any other piece is given back.
    ///
    /// # Errors
    ///
    /// The fragment itself, if it is not a whole message.
    #[inline]
    pub fn into_message(self) -> Result<Message, Self> {
        if !(self.first && self.fin) {
            return Err(self);
        }
        Ok(if self.is_text {
            // Only the protocol makes fragments (`new`), and it emits a text piece that is a
            // whole message only after validating it as one.
            Message::Text(Utf8Bytes::from_validated(self.data))
        } else {
            Message::Binary(self.data)
        })
    }
}

/// The input buffer of a [`Protocol`], for appending bytes read from the transport without a
/// copy ([`Protocol::input_buffer`]); then call [`Protocol::receive_buffered`].
///
/// Only appending is possible. The protocol unmasks and validates the text of a frame that is
/// still arriving in place (so that invalid text fails early), and it does not check those
/// bytes again: a buffer open to changes would let them change after the check. This does not
/// compile:
///
/// ```compile_fail,E0608
/// # let mut protocol = wskit_proto::Protocol::server(wskit_proto::Config::default());
/// protocol.input_buffer()[0] = 0xff;
/// ```
#[derive(Debug)]
pub struct InputBuffer<'a> {
    buf: &'a mut BytesMut,
    partial_checked: &'a mut usize,
}

impl InputBuffer<'_> {
    /// The bytes buffered, not yet parsed.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes the buffer can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The room left: how much can be appended without reallocating.
    pub fn spare_capacity(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Make room for at least `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Append a copy of `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Append without a copy: `read` gets an empty buffer over this buffer's spare capacity
    /// (the same allocation), appends to it, e.g. with tokio-util's `poll_read_buf`, and what it
    /// appended joins this buffer (without a copy, unless `read` made its buffer grow).
    pub fn append_with<R>(&mut self, read: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut tail = self.buf.split_off(self.buf.len());
        let result = read(&mut tail);
        self.buf.unsplit(tail);
        result
    }

    /// Take `buf` as the input, without a copy, if nothing is buffered (bytes read into a
    /// buffer of the I/O layer's, say). Gives `buf` back otherwise.
    ///
    /// # Errors
    ///
    /// `buf` itself, when bytes are buffered already.
    pub fn replace_empty(&mut self, buf: BytesMut) -> Result<(), BytesMut> {
        if !self.buf.is_empty() {
            return Err(buf);
        }
        // Nothing is buffered, so no frame is partly checked.
        debug_assert_eq!(*self.partial_checked, 0);
        *self.partial_checked = 0;
        *self.buf = buf;
        Ok(())
    }

    /// Let go of the allocation, if nothing is buffered (an idle connection holds none).
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            *self.buf = BytesMut::new();
        }
    }
}

/// The WebSocket protocol for one connection, client or server, without I/O.
///
/// # Call protocol
///
/// Four families of methods:
///
/// - **inputs**: [`receive_data`](Self::receive_data) (or
///   [`input_buffer`](Self::input_buffer) then [`receive_buffered`](Self::receive_buffered),
///   which saves a copy) with bytes read from the transport, and
///   [`receive_eof`](Self::receive_eof) when it ends;
/// - **commands**: the handshake ([`connect_request`](Self::connect_request) and
///   [`send_request`](Self::send_request) on a client; [`accept`](Self::accept) or
///   [`reject`](Self::reject) and [`send_response`](Self::send_response) on a server), then
///   `send_text`, `send_binary`, `send_continuation`, `send_ping`, `send_pong`, `send_close`,
///   and [`fail`](Self::fail);
/// - **outputs**: [`poll_event`](Self::poll_event) for what the peer did, and
///   [`data_to_send`](Self::data_to_send) / [`consume_data_to_send`](Self::consume_data_to_send)
///   for the bytes to write;
/// - **transport decisions**: [`should_close_transport`](Self::should_close_transport) (close
///   the TCP connection once `data_to_send` is written) and
///   [`close_expected`](Self::close_expected) (the peer should close it soon: start a timer).
///
/// After every input or command: drain the events, write the data, then check the two
/// transport decisions. A peer that breaks the protocol gets the right close frame and the
/// connection fails; nothing the peer sends can make these methods panic.
pub struct Protocol {
    role: Role,
    state: State,
    /// Shared by the connections of a server or client (a connection keeps its handshake
    /// settings for its whole life: one copy for all of them).
    config: Arc<Config>,
    input: BytesMut,
    output: Output,
    events: VecDeque<Event>,
    masks: MaskSource,
    // Handshake.
    client_key: Option<String>,
    subprotocol: Option<String>,
    /// Boxed, like `deflate`: most of a connection's life is spent without it.
    pending_deflate: Option<Box<PerMessageDeflate>>,
    /// Server: the status that opens the connection, as the handshake accepted it: 101 for
    /// HTTP/1.1, 200 for HTTP/2's extended CONNECT.
    opening_status: u16,
    // Receiving.
    /// Boxed: only fragmented messages keep it between frames.
    incoming: Option<Box<Incoming>>,
    utf8: Utf8Validator,
    /// Bytes of the current, incomplete text frame already unmasked and validated.
    partial_checked: usize,
    /// A peer error held back until the application has taken the messages before it
    /// ([`Config::defer_failures`]).
    pending_failure: Option<Box<ProtocolError>>,
    /// Boxed: an uncompressed connection should not carry the compression state's fields.
    deflate: Option<Box<PerMessageDeflate>>,
    discard_input: bool,
    // Sending.
    outgoing: Option<Outgoing>,
    // Closing.
    /// Boxed: a connection spends most of its life without it.
    closing: Option<Box<Closing>>,
    eof_sent: bool,
    eof_rcvd: bool,
    error: Option<Box<Error>>,
    /// Tests turn the short-message fast paths off, to compare them with the general paths.
    #[cfg(test)]
    pub(crate) general_paths_only: bool,
}

/// The closing handshake so far.
#[derive(Default)]
struct Closing {
    sent: Option<CloseFrame>,
    rcvd: Option<CloseFrame>,
    rcvd_then_sent: Option<bool>,
}

/// A fragmented message being received.
#[derive(Default)]
struct Incoming {
    is_text: bool,
    compressed: bool,
    fragments: usize,
    /// Bytes received so far: on the wire for uncompressed messages, inflated otherwise.
    size: usize,
    /// The pieces so far, in whole-message mode (unused in streaming mode).
    whole: Assembler,
}

/// A fragmented message being sent.
#[derive(Clone, Copy)]
struct Outgoing {
    compressed: bool,
}

impl Protocol {
    /// A client, before its opening handshake. The configuration can be shared: pass an
    /// `Arc<Config>` to give many connections one copy.
    pub fn client(config: impl Into<Arc<Config>>) -> Self {
        Self::new(Role::Client, config.into())
    }

    /// A server, waiting for a client's opening handshake.
    pub fn server(config: impl Into<Arc<Config>>) -> Self {
        Self::new(Role::Server, config.into())
    }

    fn new(role: Role, config: Arc<Config>) -> Self {
        Self {
            role,
            state: State::Connecting,
            config,
            input: BytesMut::new(),
            output: Output::new(),
            events: VecDeque::new(),
            masks: MaskSource::default(),
            client_key: None,
            subprotocol: None,
            pending_deflate: None,
            opening_status: 101,
            incoming: None,
            utf8: Utf8Validator::new(),
            partial_checked: 0,
            pending_failure: None,
            deflate: None,
            discard_input: false,
            outgoing: None,
            closing: None,
            eof_sent: false,
            eof_rcvd: false,
            error: None,
            #[cfg(test)]
            general_paths_only: false,
        }
    }

    /// Whether the short-message fast paths may be taken (always, but in tests that compare
    /// them with the general paths).
    #[inline]
    fn fast_paths(&self) -> bool {
        #[cfg(test)]
        return !self.general_paths_only;
        #[cfg(not(test))]
        true
    }

    /// Replace the masking-key generator (clients only use it). The default draws keys from the
    /// operating system's random number generator, in batches; tests pin it to get
    /// deterministic bytes.
    pub fn set_mask_generator(&mut self, generator: impl FnMut() -> [u8; 4] + Send + 'static) {
        self.masks = MaskSource::Custom(Box::new(generator));
    }

    // ===== Queries =====

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The negotiated subprotocol, once the handshake succeeded.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether permessage-deflate was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The negotiated permessage-deflate state, if any.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.deflate.as_deref()
    }

    /// The close frame this end sent, if any.
    pub fn close_sent(&self) -> Option<&CloseFrame> {
        self.closing.as_ref()?.sent.as_ref()
    }

    /// The close frame this end received, if any.
    pub fn close_rcvd(&self) -> Option<&CloseFrame> {
        self.closing.as_ref()?.rcvd.as_ref()
    }

    /// When both close frames were exchanged: `true` if the peer's came first.
    pub fn close_rcvd_then_sent(&self) -> Option<bool> {
        self.closing.as_ref()?.rcvd_then_sent
    }

    /// The close code of the connection as seen by this end (RFC 6455 section 7.1.5): the code
    /// of the close frame received, or 1006 (abnormal closure) if none was. `None` while the
    /// connection is not closed.
    pub fn close_code(&self) -> Option<CloseCode> {
        if self.state != State::Closed {
            return None;
        }
        Some(
            self.close_rcvd()
                .map_or(CloseCode::ABNORMAL, |frame| frame.code),
        )
    }

    /// The close reason received, empty if none (RFC 6455 section 7.1.6). `None` while the
    /// connection is not closed.
    pub fn close_reason(&self) -> Option<&str> {
        if self.state != State::Closed {
            return None;
        }
        Some(self.close_rcvd().map_or("", |frame| frame.reason.as_str()))
    }

    /// The first error that failed the connection, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_deref()
    }

    // ===== Inputs =====

    /// Feed bytes received from the transport.
    ///
    /// # Errors
    ///
    /// The error that made the connection fail, if these bytes did. By then the answer (a close
    /// frame, or nothing on a failed client handshake) is already queued, the state has
    /// changed, and any events before the error are still in the queue. Later input is ignored.
    /// A server's handshake request that does not parse is the exception: nothing is queued and
    /// the state stays CONNECTING, so that the I/O layer can answer it
    /// ([`reject_error`](Self::reject_error) and [`send_response`](Self::send_response)).
    pub fn receive_data(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.discard_input || self.eof_rcvd {
            return Ok(());
        }
        self.input.extend_from_slice(data);
        self.receive_buffered()
    }

    /// The buffer that [`receive_buffered`](Self::receive_buffered) reads: append bytes read
    /// from the transport to it directly, without a copy. Only appending is possible: the
    /// protocol may already have unmasked and validated the start of a frame in it.
    pub fn input_buffer(&mut self) -> InputBuffer<'_> {
        InputBuffer {
            buf: &mut self.input,
            partial_checked: &mut self.partial_checked,
        }
    }

    /// Process the bytes appended to [`input_buffer`](Self::input_buffer).
    ///
    /// # Errors
    ///
    /// As [`receive_data`](Self::receive_data).
    pub fn receive_buffered(&mut self) -> Result<(), Error> {
        if self.discard_input || self.eof_rcvd {
            self.input.clear();
            return Ok(());
        }
        let result = match self.state {
            State::Connecting => self.parse_handshake(),
            State::Open | State::Closing => self.parse_frames(),
            State::Closed => Ok(()),
        };
        if self.discard_input {
            self.input.clear();
        }
        result
    }

    /// Tell the protocol that the transport ended (the peer closed its side).
    ///
    /// After a completed closing handshake this is the normal end. Otherwise the connection
    /// closed abnormally (1006): the error says so.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnexpectedEof`] (or [`HandshakeError::UnexpectedEof`] during the
    /// opening handshake) when the transport ended before the closing handshake.
    pub fn receive_eof(&mut self) -> Result<(), Error> {
        if self.eof_rcvd {
            return Ok(());
        }
        self.eof_rcvd = true;
        if let Some(error) = self.pending_failure.take() {
            self.error
                .get_or_insert_with(|| Box::new(Error::Protocol(*error)));
        }
        let clean = self.close_rcvd().is_some() || self.state == State::Closed;
        let previous = self.state;
        self.state = State::Closed;
        self.eof_sent = true;
        self.input.clear();
        self.incoming = None;
        if clean {
            return Ok(());
        }
        let error = if previous == State::Connecting {
            Error::Handshake(HandshakeError::UnexpectedEof)
        } else {
            Error::Protocol(ProtocolError::UnexpectedEof)
        };
        self.error.get_or_insert_with(|| Box::new(error.clone()));
        Err(error)
    }

    // ===== Outputs =====

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next bytes to write to the transport: empty only once everything was written.
    ///
    /// On a server, a large payload sent with [`send_message`](Self::send_message) is held
    /// out of line (not copied), so this may be only part of what is waiting: write, then
    /// [`consume_data_to_send`](Self::consume_data_to_send), until it is empty. Or write
    /// everything at once with a vectored write from [`output`](Self::output).
    pub fn data_to_send(&self) -> &[u8] {
        self.output.chunk()
    }

    /// How many bytes are waiting to be written, in all.
    pub fn bytes_to_send(&self) -> usize {
        self.output.len()
    }

    /// Everything waiting to be written, for a vectored write ([`Output::io_slices`]).
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Mark the next `n` bytes waiting to be written as written.
    pub fn consume_data_to_send(&mut self, n: usize) {
        self.output.advance(n);
    }

    /// Take every byte waiting to be written, in one vector.
    pub fn take_data_to_send(&mut self) -> Vec<u8> {
        let data = self.output.to_vec();
        self.output.clear();
        data
    }

    /// Move the bytes waiting to be written into `buf`, giving the protocol `buf`'s (cleared)
    /// allocation in exchange. An I/O layer that writes from its own buffer saves a copy
    /// (out-of-line payloads are copied in; [`swap_output`](Self::swap_output) keeps them).
    pub fn swap_data_to_send(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        if self.output.has_out_of_line() {
            buf.extend_from_slice(&self.output.to_vec());
            self.output.clear();
        } else {
            self.output.compact();
            std::mem::swap(self.output.buf_mut(), buf);
        }
    }

    /// Move everything waiting to be written into `output`, giving the protocol `output`'s
    /// allocation in exchange: no payload is copied (bytes already consumed are dropped from
    /// the front of the buffer first). Whatever `output` still held is discarded: swap only an
    /// output that was written.
    pub fn swap_output(&mut self, output: &mut Output) {
        debug_assert!(
            output.is_empty(),
            "swapping out an output that was not written"
        );
        output.clear();
        self.output.compact();
        std::mem::swap(&mut self.output, output);
    }

    /// Drop everything buffered and not parsed yet, with its allocation, and ignore later
    /// input: for a transport that will not be read any more.
    pub fn discard_input(&mut self) {
        self.input = BytesMut::new();
        self.partial_checked = 0;
        self.discard_input = true;
    }

    /// Drop everything waiting to be written, e.g. when the transport is gone or will not be
    /// written any more.
    pub fn discard_output(&mut self) {
        self.output = Output::new();
    }

    /// Free the buffers that are empty: the input buffer when no frame is partly received,
    /// the output buffer when everything was written, the compression buffer, and the event
    /// queue when empty; and the compressor and decompressor of permessage-deflate, keeping
    /// only their last windows to rebuild them from (see
    /// [the extension's memory notes](crate::extensions::permessage_deflate#memory)): the
    /// compressor unless a fragmented message is being sent, the decompressor unless the peer's
    /// fragmented message stopped in the middle of a deflate block. An I/O layer calls this when a
    /// connection goes idle, so that idle connections hold no buffers.
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() {
            self.input = BytesMut::new();
        }
        if self.output.is_empty() {
            self.output = Output::new();
        }
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.release_buffers(self.outgoing.is_some(), self.incoming.is_some());
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// Whether the transport should be closed once everything waiting to be written is
    /// ([`bytes_to_send`](Self::bytes_to_send) is 0): the server closes the TCP connection
    /// first after the closing handshake
    /// (RFC 6455 section 7.1.1), either side after a failure or after the peer ended the
    /// transport, and a server after rejecting a handshake.
    pub fn should_close_transport(&self) -> bool {
        self.eof_sent
    }

    /// Whether the peer is expected to close the transport soon: the closing handshake is in
    /// progress, or this end failed the connection. The I/O layer should then close the
    /// transport itself if the peer has not within a timeout.
    pub fn close_expected(&self) -> bool {
        self.state == State::Closing
            || (self.error.is_some() && matches!(self.state, State::Open | State::Closing))
    }

    // ===== Commands: the opening handshake =====

    /// Client: build the opening handshake request for `host` (the `Host` header, with the
    /// port if not the default) and `path` (with the query), with a fresh
    /// `Sec-WebSocket-Key`, the subprotocols, the permessage-deflate offer, the origin, the
    /// user agent and the extra headers from the config. Edit it if needed, then pass it to
    /// [`send_request`](Self::send_request).
    pub fn connect_request(&self, host: &str, path: &str) -> Request {
        let mut request = Request::get(path);
        let headers = &mut request.headers;
        headers.append("Host", host);
        headers.append("Upgrade", "websocket");
        headers.append("Connection", "Upgrade");
        headers.append("Sec-WebSocket-Key", generate_key());
        headers.append("Sec-WebSocket-Version", "13");
        if let Some(origin) = &self.config.origin {
            headers.append("Origin", origin.as_str());
        }
        if let Some(deflate) = &self.config.compression {
            headers.append("Sec-WebSocket-Extensions", deflate.offer());
        }
        if !self.config.subprotocols.is_empty() {
            headers.append(
                "Sec-WebSocket-Protocol",
                self.config.subprotocols.join(", "),
            );
        }
        if let Some(agent) = &self.config.user_agent {
            headers.append("User-Agent", agent.as_str());
        }
        for (name, value) in &self.config.extra_headers {
            headers.append(name.as_str(), value.as_str());
        }
        request
    }

    /// Client: send the opening handshake request.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] on a server, after the request was sent, or if the request has no
    /// `Sec-WebSocket-Key`.
    pub fn send_request(&mut self, request: &Request) -> Result<(), InvalidState> {
        if self.role != Role::Client {
            return Err(InvalidState::WrongRole);
        }
        if self.state != State::Connecting || self.client_key.is_some() {
            return Err(InvalidState::WrongState(self.state));
        }
        let key = request
            .headers
            .get("Sec-WebSocket-Key")
            .ok_or(InvalidState::MissingKey)?;
        self.client_key = Some(key.to_owned());
        request.write(self.output.buf_mut());
        Ok(())
    }

    /// Server: validate the client's request and build the 101 response, negotiating
    /// permessage-deflate and the subprotocol ([`select_subprotocol`](Self::select_subprotocol)).
    /// Send it with [`send_response`](Self::send_response), or send another response instead.
    ///
    /// # Errors
    ///
    /// A [`HandshakeError`] whose `status()` is the HTTP status to answer with; build that
    /// answer with [`reject_error`](Self::reject_error).
    pub fn accept(&mut self, request: &Request) -> Result<Response, HandshakeError> {
        let subprotocol = self.select_subprotocol(request);
        self.accept_with_subprotocol(request, subprotocol)
    }

    /// Server: as [`accept`](Self::accept), with a subprotocol chosen by the caller (which must
    /// be one the client offered, or `None`).
    ///
    /// # Errors
    ///
    /// As [`accept`](Self::accept), and [`HandshakeError::Negotiation`] if `subprotocol` was
    /// not offered.
    pub fn accept_with_subprotocol(
        &mut self,
        request: &Request,
        subprotocol: Option<String>,
    ) -> Result<Response, HandshakeError> {
        let mut response = if request.version == HttpVersion::Http2 {
            // RFC 8441 section 5: a 200 on the stream, without the HTTP/1.1 upgrade's fields.
            check_extended_connect(request)?;
            let mut response = Response::new(200, Bytes::new());
            // Not the fields of a rejection that closes: the stream stays open.
            response.headers = crate::handshake::Headers::new();
            response
        } else {
            let key = check_request(request)?;
            let mut response = Response::new(101, Bytes::new());
            response.headers.append("Upgrade", "websocket");
            response.headers.append("Connection", "Upgrade");
            response
                .headers
                .append("Sec-WebSocket-Accept", accept_key(key));
            response
        };
        self.opening_status = response.status;
        self.pending_deflate = None;
        if let Some(config) = &self.config.compression {
            let offers = parse_extensions(request.headers.get_all("Sec-WebSocket-Extensions"))?;
            if let Some((value, deflate)) = config.negotiate_server(&offers)? {
                response.headers.append("Sec-WebSocket-Extensions", value);
                self.pending_deflate = Some(Box::new(deflate));
            }
        }
        if let Some(protocol) = &subprotocol {
            if !header_tokens(&request.headers, "Sec-WebSocket-Protocol").any(|p| p == protocol) {
                return Err(HandshakeError::Negotiation(format!(
                    "subprotocol {protocol:?} was not offered"
                )));
            }
            response
                .headers
                .append("Sec-WebSocket-Protocol", protocol.as_str());
        }
        self.subprotocol = subprotocol;
        for (name, value) in &self.config.extra_headers {
            response.headers.append(name.as_str(), value.as_str());
        }
        Ok(response)
    }

    /// Server: the subprotocol to accept by default: the first of the configured subprotocols
    /// (in the server's order of preference) that the client offered, if any.
    pub fn select_subprotocol(&self, request: &Request) -> Option<String> {
        self.config
            .subprotocols
            .iter()
            .find(|ours| {
                header_tokens(&request.headers, "Sec-WebSocket-Protocol").any(|p| p == *ours)
            })
            .cloned()
    }

    /// Server: a response that rejects the handshake with `status` and a plain-text `body`.
    pub fn reject(&self, status: u16, body: impl Into<Bytes>) -> Response {
        Response::new(status, body)
    }

    /// Server: the response for a failed handshake: its status, its message as the body, and
    /// the headers the status calls for (`Upgrade` and `Sec-WebSocket-Version: 13` with 426,
    /// `Allow: GET` with 405).
    pub fn reject_error(&self, error: &HandshakeError) -> Response {
        self.reject_error_in(HttpVersion::Http11, error)
    }

    /// Server: as [`reject_error`](Self::reject_error), for a request in `version`: in
    /// HTTP/2, a 426 carries no `Upgrade` (a connection-specific field) and a 405 allows
    /// `CONNECT`.
    pub fn reject_error_in(&self, version: HttpVersion, error: &HandshakeError) -> Response {
        let http2 = version == HttpVersion::Http2;
        let status = error.status();
        let mut response = Response::new(
            status,
            format!("Failed to open a WebSocket connection: {error}.\n"),
        );
        match status {
            426 => {
                if !http2 {
                    response.headers.append("Upgrade", "websocket");
                }
                response.headers.append("Sec-WebSocket-Version", "13");
            }
            405 => response
                .headers
                .append("Allow", if http2 { "CONNECT" } else { "GET" }),
            _ => {}
        }
        response
    }

    /// Server: send the handshake response. A 101 opens the connection (with what
    /// [`accept`](Self::accept) negotiated), or a 200 after `accept` took an HTTP/2 extended
    /// CONNECT (whose response another HTTP layer sends: discard this output then); any other
    /// status closes it.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] on a client or outside the opening handshake.
    pub fn send_response(&mut self, response: &Response) -> Result<(), Error> {
        if self.role != Role::Server {
            return Err(InvalidState::WrongRole.into());
        }
        if self.state != State::Connecting {
            return Err(InvalidState::WrongState(self.state).into());
        }
        let opens = response.status == self.opening_status;
        if opens && self.error.is_some() {
            // The request did not parse: only a rejection can answer it.
            return Err(InvalidState::HandshakeFailed.into());
        }
        response.write(self.output.buf_mut());
        if opens {
            self.state = State::Open;
            self.deflate = self.pending_deflate.take();
            // Frames that arrived right behind the request.
            return self.parse_frames();
        }
        self.pending_deflate = None;
        self.subprotocol = None;
        self.state = State::Closed;
        self.eof_sent = true;
        self.discard_input = true;
        self.input.clear();
        Ok(())
    }

    // ===== Commands: data and control frames =====

    /// Send a text frame: a whole message, or with `fin == false` the first frame of a
    /// fragmented one. `data` must be UTF-8 as a whole message (a fragment may split a code
    /// point).
    ///
    /// # Errors
    ///
    /// [`InvalidState`] outside the OPEN state or while a fragmented message is in progress.
    pub fn send_text(&mut self, data: &[u8], fin: bool) -> Result<(), InvalidState> {
        self.send_data(OpCode::Text, data, None, fin)
    }

    /// Send a binary frame: a whole message, or with `fin == false` the first frame of a
    /// fragmented one.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8], fin: bool) -> Result<(), InvalidState> {
        self.send_data(OpCode::Binary, data, None, fin)
    }

    /// Send the next frame of a fragmented message; `fin` ends the message.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] outside the OPEN state or without a fragmented message in progress.
    pub fn send_continuation(&mut self, data: &[u8], fin: bool) -> Result<(), InvalidState> {
        self.send_data(OpCode::Continuation, data, None, fin)
    }

    /// Send a message.
    ///
    /// A server does not copy a payload of [`OUT_OF_LINE_MIN`] bytes or more that it sends
    /// uncompressed: it keeps a reference to it in its [`output`](Self::output) (see
    /// [`data_to_send`](Self::data_to_send)).
    ///
    /// # Errors
    ///
    /// As [`send_text`](Self::send_text).
    #[inline]
    pub fn send_message(&mut self, message: &Message) -> Result<(), InvalidState> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_shared()),
            Message::Binary(data) => (OpCode::Binary, data),
        };
        // The common case on a server: a short message, uncompressed, not inside a fragmented
        // one, framed without `send_data`'s layers of checks.
        if payload.len() <= MAX_SHORT_PAYLOAD
            && self.fast_paths()
            && self.role == Role::Server
            && self.state == State::Open
            && self.outgoing.is_none()
            && self.deflate.is_none()
        {
            write_frame(self.output.buf_mut(), true, 0, opcode, payload, None);
            return Ok(());
        }
        self.send_data(opcode, payload, Some(payload), true)
    }

    /// Server: queue frames that were encoded ahead of time, e.g. one message framed once for
    /// many connections (broadcast). `frames` must hold whole, unmasked frames of complete
    /// messages, without RSV bits unless this connection negotiated them.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] on a client (its frames must be masked one by one), outside the OPEN
    /// state, or while a fragmented message is being sent.
    pub fn send_encoded(&mut self, frames: &[u8]) -> Result<(), InvalidState> {
        if self.role != Role::Server {
            return Err(InvalidState::WrongRole);
        }
        self.check_open()?;
        if self.outgoing.is_some() {
            return Err(InvalidState::FragmentedMessageInProgress);
        }
        self.output.buf_mut().extend_from_slice(frames);
        Ok(())
    }

    /// Send a ping with at most 125 bytes of data.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] outside the OPEN state or for a payload over 125 bytes.
    pub fn send_ping(&mut self, data: &[u8]) -> Result<(), InvalidState> {
        self.check_open()?;
        self.send_control(OpCode::Ping, data)
    }

    /// Send a pong with at most 125 bytes of data. Pings are answered automatically; this is
    /// for unsolicited pongs (a unidirectional heartbeat, RFC 6455 section 5.5.3).
    ///
    /// # Errors
    ///
    /// [`InvalidState`] outside the OPEN state or for a payload over 125 bytes.
    pub fn send_pong(&mut self, data: &[u8]) -> Result<(), InvalidState> {
        self.check_open()?;
        self.send_control(OpCode::Pong, data)
    }

    /// Start the closing handshake with `code` and `reason` (RFC 6455 section 7.1.2). Code
    /// 1005 sends an empty close frame.
    ///
    /// # Errors
    ///
    /// [`InvalidState`] outside the OPEN state, or for a code that may not be sent or a reason
    /// over 123 bytes.
    pub fn send_close(&mut self, code: CloseCode, reason: &str) -> Result<(), InvalidState> {
        self.check_open()?;
        let frame = CloseFrame::new(code, reason);
        frame.check_sendable()?;
        self.write_close(frame);
        self.state = State::Closing;
        Ok(())
    }

    /// Fail the connection (RFC 6455 section 7.1.7): send a close frame with `code` and
    /// `reason` if the connection is open (not for 1006), stop reading, and, on a server,
    /// close the transport.
    ///
    /// Codes that may not be sent become 1011 (internal error); reasons are cut to 123 bytes
    /// on a character boundary.
    pub fn fail(&mut self, code: CloseCode, reason: &str) {
        if self.state == State::Open && code != CloseCode::ABNORMAL {
            let code = if code.is_valid_on_wire() {
                code
            } else {
                CloseCode::INTERNAL_ERROR
            };
            let mut end = reason.len().min(crate::close::MAX_CLOSE_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            self.write_close(CloseFrame::new(code, &reason[..end]));
            self.state = State::Closing;
        }
        if self.state == State::Connecting {
            self.state = State::Closed;
        }
        if self.role == Role::Server {
            self.eof_sent = true;
        }
        self.discard_input = true;
        self.input.clear();
        self.incoming = None;
    }

    /// The peer error held back by [`Config::defer_failures`], if any.
    pub fn pending_failure(&self) -> Option<&ProtocolError> {
        self.pending_failure.as_deref()
    }

    /// Fail the connection for the held-back peer error, if there is one: send the close frame
    /// with its code, as [`receive_data`](Self::receive_data) would have. Call it once the
    /// application has taken the messages that came before the error.
    pub fn apply_pending_failure(&mut self) -> Option<Error> {
        let error = self.pending_failure.take()?;
        Some(self.fail_with(*error))
    }

    fn fail_with(&mut self, e: ProtocolError) -> Error {
        let code = CloseCode::from(&e);
        self.fail(code, &e.to_string());
        let error = Error::Protocol(e);
        self.error.get_or_insert_with(|| Box::new(error.clone()));
        error
    }

    // ===== Internals: receiving =====

    fn parse_handshake(&mut self) -> Result<(), Error> {
        match self.role {
            Role::Server => {
                if self.events.iter().any(|e| matches!(e, Event::Request(_))) {
                    return Ok(()); // one request per connection; the rest waits for the 101
                }
                match Request::parse(&self.input, &self.config.limits.http) {
                    Ok(None) => Ok(()),
                    Ok(Some((request, used))) => {
                        self.input.advance(used);
                        self.events.push_back(Event::Request(Box::new(request)));
                        Ok(())
                    }
                    Err(e) => Err(self.fail_handshake(e)),
                }
            }
            Role::Client => {
                let Some(key) = self.client_key.clone() else {
                    return Ok(()); // nothing sent yet: the server should not speak first
                };
                let (response, used) = match Response::parse(&self.input, &self.config.limits.http)
                {
                    Ok(None) => return Ok(()),
                    Ok(Some(parsed)) => parsed,
                    Err(e) => return Err(self.fail_handshake(e)),
                };
                self.input.advance(used);
                let outcome = self.check_server_response(&response, &key);
                self.events.push_back(Event::Response(Box::new(response)));
                match outcome {
                    Ok(()) => {
                        self.state = State::Open;
                        self.parse_frames()
                    }
                    Err(e) => Err(self.fail_handshake(e)),
                }
            }
        }
    }

    fn check_server_response(
        &mut self,
        response: &Response,
        key: &str,
    ) -> Result<(), HandshakeError> {
        check_response(response, key)?;
        let accepted = parse_extensions(response.headers.get_all("Sec-WebSocket-Extensions"))?;
        self.deflate = match &self.config.compression {
            Some(config) => config.negotiate_client(&accepted)?.map(Box::new),
            None if accepted.is_empty() => None,
            None => {
                return Err(HandshakeError::Negotiation(
                    "no extensions were offered".into(),
                ));
            }
        };
        let mut protocols = header_tokens(&response.headers, "Sec-WebSocket-Protocol");
        match (protocols.next(), protocols.next()) {
            (None, _) => self.subprotocol = None,
            (Some(p), None) if self.config.subprotocols.iter().any(|ours| ours == p) => {
                self.subprotocol = Some(p.to_owned());
            }
            (Some(p), _) => {
                return Err(HandshakeError::Negotiation(format!(
                    "server chose subprotocol {p:?}, which was not offered"
                )));
            }
        }
        Ok(())
    }

    /// A client's handshake that failed is over: the connection is closed. A server's request
    /// that failed to parse still gets an HTTP answer: the state stays CONNECTING (input is
    /// ignored from now on) until the I/O layer sends one
    /// ([`reject_error`](Self::reject_error), [`send_response`](Self::send_response)), which
    /// closes the connection.
    fn fail_handshake(&mut self, error: HandshakeError) -> Error {
        if self.role == Role::Client {
            self.state = State::Closed;
            self.eof_sent = true;
        }
        self.discard_input = true;
        self.deflate = None;
        let error = Error::Handshake(error);
        self.error.get_or_insert_with(|| Box::new(error.clone()));
        error
    }

    fn parse_frames(&mut self) -> Result<(), Error> {
        while !self.discard_input {
            match self.parse_frame() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) if self.config.defer_failures => {
                    self.pending_failure = Some(Box::new(e));
                    self.discard_input = true;
                    self.input.clear();
                    return Ok(());
                }
                Err(e) => return Err(self.fail_with(e)),
            }
        }
        Ok(())
    }

    /// Parse and handle one frame. `Ok(false)` when more input is needed.
    fn parse_frame(&mut self) -> Result<bool, ProtocolError> {
        if self.fast_paths()
            && let Some(handled) = self.parse_short_message()
        {
            return handled.map(|()| true);
        }
        let Some((header, header_len)) = FrameHeader::parse(&self.input)? else {
            return Ok(false);
        };
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let allowed_rsv = match header.opcode {
            OpCode::Text | OpCode::Binary if self.deflate.is_some() => RSV1,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits { bits: header.rsv });
        }
        self.check_frame_size(&header)?;
        // The size checks above bound the length, so it fits in usize.
        let len = header.payload_len as usize;
        let total = header_len + len;
        if self.input.len() < total {
            self.input.reserve(total - self.input.len());
            self.check_partial_text(&header, header_len)?;
            return Ok(false);
        }
        self.input.advance(header_len);
        let mut payload = self.input.split_to(len);
        let prechecked = std::mem::take(&mut self.partial_checked);
        if let Some(key) = header.mask {
            apply_mask(&mut payload[prechecked..], key, prechecked);
        }
        self.handle_frame(header, payload, prechecked)?;
        Ok(true)
    }

    /// The common case on a server, parsed without the general path: a whole message in one
    /// short, masked, uncompressed frame, with the whole frame buffered and no fragmented
    /// message in progress. `None` for anything else, left to the general path (which treats
    /// these frames the same way: a property test compares the two).
    #[inline]
    fn parse_short_message(&mut self) -> Option<Result<(), ProtocolError>> {
        let &[b0, b1, k0, k1, k2, k3, ..] = &self.input[..] else {
            return None;
        };
        // FIN, no RSV bits, text or binary; masked, 7-bit length.
        let is_text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        let len = usize::from(b1 & 0x7f);
        if b1 & 0x80 == 0
            || len > MAX_SHORT_PAYLOAD
            || self.input.len() < SHORT_HEADER_LEN + len
            || self.role != Role::Server
            || self.incoming.is_some()
            || self.partial_checked != 0
        {
            return None;
        }
        let limits = &self.config.limits;
        if limits.max_frame_size.is_some_and(|limit| len > limit)
            || limits.max_message_size.is_some_and(|limit| len > limit)
        {
            return None; // the general path reports which limit
        }
        self.input.advance(SHORT_HEADER_LEN);
        let mut payload = self.input.split_to(len);
        apply_mask(&mut payload, [k0, k1, k2, k3], 0);
        Some(self.queue_whole_message(is_text, payload))
    }

    /// Validate and queue a whole uncompressed message that came in one frame, without a copy.
    #[inline(always)]
    fn queue_whole_message(
        &mut self,
        is_text: bool,
        payload: BytesMut,
    ) -> Result<(), ProtocolError> {
        if is_text && !is_valid(&payload) {
            return Err(ProtocolError::InvalidUtf8);
        }
        let data = payload.freeze();
        self.events.push_back(if self.config.streaming {
            Event::Fragment(Fragment::new(is_text, true, true, data))
        } else if is_text {
            Event::Message(Message::Text(Utf8Bytes::from_validated(data)))
        } else {
            Event::Message(Message::Binary(data))
        });
        Ok(())
    }

    /// Validate the UTF-8 of the part of an uncompressed text frame that has arrived, so that
    /// invalid text fails the connection before the rest of a large frame comes (RFC 6455
    /// section 8.1 allows failing as soon as possible; Autobahn cases 6.4.3 and 6.4.4 check
    /// it). The bytes checked are unmasked in place and remembered in `partial_checked`.
    fn check_partial_text(
        &mut self,
        header: &FrameHeader,
        header_len: usize,
    ) -> Result<(), ProtocolError> {
        let is_text = match (header.opcode, &self.incoming) {
            (OpCode::Text, None) => header.rsv & RSV1 == 0,
            (OpCode::Continuation, Some(incoming)) => incoming.is_text && !incoming.compressed,
            _ => false,
        };
        let available = self.input.len() - header_len;
        if !is_text || available <= self.partial_checked {
            return Ok(());
        }
        let start = self.partial_checked;
        let bytes = &mut self.input[header_len + start..header_len + available];
        if let Some(key) = header.mask {
            apply_mask(bytes, key, start);
        }
        self.utf8
            .feed(bytes)
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        self.partial_checked = available;
        Ok(())
    }

    /// Check a frame's length against the limits before buffering its payload.
    fn check_frame_size(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if header.opcode.is_control() {
            return Ok(()); // at most 125 bytes, checked by the parser
        }
        let limits = &self.config.limits;
        let size = header.payload_len;
        if let Some(limit) = limits.max_frame_size
            && size > limit as u64
        {
            return Err(ProtocolError::FrameTooBig { size, limit });
        }
        if let Some(limit) = limits.max_message_size {
            let compressed = match (&self.incoming, header.opcode) {
                (Some(incoming), OpCode::Continuation) => incoming.compressed,
                _ => header.rsv & RSV1 != 0,
            };
            // Uncompressed data counts toward the message as it is; compressed data is
            // counted while inflating, but one frame still cannot exceed the limit.
            let so_far = match (&self.incoming, header.opcode, compressed) {
                (Some(incoming), OpCode::Continuation, false) => incoming.size as u64,
                _ => 0,
            };
            if so_far + size > limit as u64 {
                return Err(ProtocolError::MessageTooBig { limit });
            }
        }
        Ok(())
    }

    fn handle_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
        prechecked: usize,
    ) -> Result<(), ProtocolError> {
        match header.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.handle_data(header, payload, prechecked)
            }
            OpCode::Ping => {
                if self.state == State::Open {
                    self.write_frame(OpCode::Pong, 0, &payload, true);
                }
                self.events.push_back(Event::Ping(payload.freeze()));
                Ok(())
            }
            OpCode::Pong => {
                self.events.push_back(Event::Pong(payload.freeze()));
                Ok(())
            }
            OpCode::Close => self.handle_close(&payload),
        }
    }

    /// Handle a data frame. `prechecked` bytes at the start of a text payload were already fed
    /// to the UTF-8 validator while the frame was arriving.
    fn handle_data(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
        prechecked: usize,
    ) -> Result<(), ProtocolError> {
        let limits = &self.config.limits;
        let max_message = limits.max_message_size.unwrap_or(usize::MAX);
        let first = header.opcode != OpCode::Continuation;
        // The box of a fragmented message, reused for its next frames.
        let mut kept = None;
        let mut incoming = match (self.incoming.take(), first) {
            (Some(_), true) => return Err(ProtocolError::ExpectedContinuation),
            (None, false) => return Err(ProtocolError::UnexpectedContinuation),
            (Some(mut boxed), false) => {
                let mut incoming = std::mem::take(&mut *boxed);
                kept = Some(boxed);
                incoming.fragments += 1;
                if let Some(limit) = limits.max_fragments
                    && incoming.fragments > limit
                {
                    return Err(ProtocolError::TooManyFragments { limit });
                }
                incoming
            }
            (None, true) => {
                let is_text = header.opcode == OpCode::Text;
                let compressed = header.rsv & RSV1 != 0;
                if header.fin && !compressed && prechecked == 0 {
                    // The common case: a whole uncompressed message in one frame, no copy.
                    return self.queue_whole_message(is_text, payload);
                }
                Incoming {
                    is_text,
                    compressed,
                    fragments: 1,
                    size: 0,
                    whole: Assembler::new(),
                }
            }
        };

        let data: Bytes = if incoming.compressed {
            let deflate = self
                .deflate
                .as_mut()
                .ok_or(ProtocolError::ReservedBits { bits: RSV1 })?;
            let mut inflated = Vec::new();
            // The limit counts what came before.
            let limit = max_message.saturating_sub(incoming.size);
            deflate
                .decompress(&payload, header.fin, &mut inflated, limit)
                .map_err(|e| match e {
                    ProtocolError::MessageTooBig { .. } => {
                        ProtocolError::MessageTooBig { limit: max_message }
                    }
                    other => other,
                })?;
            incoming.size += inflated.len();
            Bytes::from(inflated)
        } else {
            incoming.size += payload.len();
            payload.freeze()
        };

        if incoming.is_text {
            // Compressed data is never prechecked (it is validated once inflated).
            self.utf8
                .feed(&data[prechecked.min(data.len())..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            if header.fin {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }

        let fragment = Fragment::new(incoming.is_text, first, header.fin, data);
        if self.config.streaming {
            self.events.push_back(Event::Fragment(fragment));
        } else if let Some(message) = incoming.whole.push_validated(fragment) {
            // The pieces of one message, in order, the first included, validated as one
            // stream above.
            self.events.push_back(Event::Message(message));
        }
        if !header.fin {
            self.incoming = Some(match kept {
                Some(mut boxed) => {
                    *boxed = incoming;
                    boxed
                }
                None => Box::new(incoming),
            });
        }
        Ok(())
    }

    fn handle_close(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        let frame = CloseFrame::parse(payload)?;
        self.closing.get_or_insert_default().rcvd = Some(frame.clone());
        if self.state == State::Open {
            // Echo the peer's close frame, code and reason, as Python websockets does (RFC 6455
            // section 5.5.1: "typically echos the status code it received"); an empty close
            // frame (1005) is answered with an empty one.
            self.write_close(frame.clone());
        } else if let Some(closing) = self.closing.as_mut()
            && closing.sent.is_some()
            && closing.rcvd_then_sent.is_none()
        {
            closing.rcvd_then_sent = Some(false);
        }
        self.state = State::Closing;
        // The server closes the TCP connection first (7.1.1); the client waits for it.
        if self.role == Role::Server {
            self.eof_sent = true;
        }
        // Nothing may follow a close frame (5.5.1).
        self.discard_input = true;
        self.incoming = None;
        self.events.push_back(Event::Close(frame));
        Ok(())
    }

    // ===== Internals: sending =====

    fn check_open(&self) -> Result<(), InvalidState> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(InvalidState::WrongState(self.state))
        }
    }

    /// Send a data frame. `shared` is `data` as [`Bytes`], when the caller has it: a server
    /// then queues a large uncompressed payload without copying it.
    fn send_data(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        shared: Option<&Bytes>,
        fin: bool,
    ) -> Result<(), InvalidState> {
        self.check_open()?;
        let compressed = match (opcode, self.outgoing) {
            (OpCode::Continuation, None) => return Err(InvalidState::NoFragmentedMessage),
            (OpCode::Continuation, Some(outgoing)) => outgoing.compressed,
            (_, Some(_)) => return Err(InvalidState::FragmentedMessageInProgress),
            (_, None) => self.deflate.is_some(),
        };
        self.outgoing = if fin {
            None
        } else {
            Some(Outgoing { compressed })
        };
        let rsv = if compressed && opcode != OpCode::Continuation {
            RSV1
        } else {
            0
        };
        match (compressed, self.deflate.as_mut()) {
            (true, Some(deflate)) => {
                // Compressed into a buffer kept for the next message: no allocation per
                // message once it has grown; a large one is not kept.
                let mut scratch = deflate.take_scratch();
                scratch.clear();
                deflate.compress(data, fin, &mut scratch);
                self.write_frame(opcode, rsv, &scratch, fin);
                if scratch.capacity() <= MAX_KEPT_SCRATCH
                    && let Some(deflate) = self.deflate.as_mut()
                {
                    deflate.put_scratch(scratch);
                }
            }
            _ => match shared {
                Some(payload) if self.role == Role::Server && payload.len() >= OUT_OF_LINE_MIN => {
                    let header = FrameHeader {
                        fin,
                        rsv,
                        opcode,
                        mask: None,
                        payload_len: payload.len() as u64,
                    };
                    header.write(self.output.buf_mut());
                    self.output.push_out_of_line(payload.clone());
                }
                _ => self.write_frame(opcode, rsv, data, fin),
            },
        }
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), InvalidState> {
        if data.len() > MAX_CONTROL_PAYLOAD {
            return Err(InvalidState::ControlPayloadTooLong(data.len()));
        }
        self.write_frame(opcode, 0, data, true);
        Ok(())
    }

    fn write_close(&mut self, frame: CloseFrame) {
        let mut payload = Vec::with_capacity(2 + frame.reason.len());
        frame.write_payload(&mut payload);
        self.write_frame(OpCode::Close, 0, &payload, true);
        let closing = self.closing.get_or_insert_default();
        if closing.rcvd.is_some() && closing.rcvd_then_sent.is_none() {
            closing.rcvd_then_sent = Some(true);
        }
        closing.sent = Some(frame);
    }

    fn write_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8], fin: bool) {
        let mask = match self.role {
            Role::Client => Some(self.masks.next_key()),
            Role::Server => None,
        };
        write_frame(self.output.buf_mut(), fin, rsv, opcode, payload, mask);
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocol")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("subprotocol", &self.subprotocol)
            .field("compressed", &self.deflate.is_some())
            .field("close_sent", &self.close_sent())
            .field("close_rcvd", &self.close_rcvd())
            .finish_non_exhaustive()
    }
}

/// The longest payload of a frame with a 7-bit length (RFC 6455 section 5.2).
const MAX_SHORT_PAYLOAD: usize = 125;

/// The header of a masked frame with a 7-bit length: two bytes and the masking key.
const SHORT_HEADER_LEN: usize = 6;

/// The largest compression buffer kept between messages.
const MAX_KEPT_SCRATCH: usize = 64 << 10;

// ===== Masking keys =====

/// Where client masking keys come from.
enum MaskSource {
    /// Keys from the OS random number generator, drawn 64 at a time to save system calls.
    /// Allocated on first use: servers never mask.
    Random {
        keys: Option<Box<[u8; 256]>>,
        used: usize,
    },
    /// Keys from the caller, e.g. fixed keys in tests.
    Custom(Box<dyn FnMut() -> [u8; 4] + Send>),
}

impl Default for MaskSource {
    fn default() -> Self {
        Self::Random {
            keys: None,
            used: 256,
        }
    }
}

impl MaskSource {
    fn next_key(&mut self) -> [u8; 4] {
        match self {
            Self::Random { keys, used } => {
                let keys = keys.get_or_insert_with(|| Box::new([0; 256]));
                if *used == keys.len() {
                    // RFC 6455 section 5.3: the key must be unpredictable, so it comes from the
                    // OS. If the OS cannot provide randomness, no secure key can be made.
                    getrandom::fill(&mut keys[..]).expect("the OS random number generator failed");
                    *used = 0;
                }
                let mut key = [0; 4];
                key.copy_from_slice(&keys[*used..*used + 4]);
                *used += 4;
                key
            }
            Self::Custom(generate) => generate(),
        }
    }
}
