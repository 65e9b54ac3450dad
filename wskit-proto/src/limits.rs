//! Limits on everything a peer controls.
//!
//! Every size and count that an untrusted peer chooses has a bound here, with Python
//! websockets' default where it has one. A message or frame over its limit fails the connection
//! with 1009 before its payload is buffered (and, for compressed messages, while inflating, so a
//! "zip bomb" never allocates more than the limit). HTTP limits answer with status 431.

/// Limits applied while receiving.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest message, in bytes, counted after decompression. `None` for no limit.
    ///
    /// Default: 1 MiB (`2**20`, as websockets' `max_size`): enough for chat and telemetry,
    /// small enough that a hostile peer cannot make a server buffer much.
    pub max_message_size: Option<usize>,
    /// The largest single frame payload, in bytes, as sent on the wire. `None` for no limit
    /// other than `max_message_size`.
    ///
    /// Default: `None` (a frame is bounded by the message limit).
    pub max_frame_size: Option<usize>,
    /// The most frames one message may be split into. `None` for no limit.
    ///
    /// Default: 65 536. Empty continuation frames cost CPU but no memory; this bound stops a
    /// peer from streaming them forever.
    pub max_fragments: Option<usize>,
    /// Limits on the opening handshake's HTTP messages.
    pub http: HttpLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: Some(1 << 20),
            max_frame_size: None,
            max_fragments: Some(65_536),
            http: HttpLimits::default(),
        }
    }
}

impl Limits {
    setters! {
        max_message_size, with_max_message_size: Option<usize>;
        max_frame_size, with_max_frame_size: Option<usize>;
        max_fragments, with_max_fragments: Option<usize>;
        http, with_http: HttpLimits;
    }

    /// No limits on messages or frames (HTTP limits stay). Only for trusted peers.
    pub fn unlimited() -> Self {
        Self {
            max_message_size: None,
            max_frame_size: None,
            max_fragments: None,
            http: HttpLimits::default(),
        }
    }
}

/// Limits on the HTTP/1.1 messages of the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// The most header fields in a request or response. Default: 128, as websockets.
    pub max_headers: usize,
    /// The longest line (request line, status line or one header line), in bytes.
    /// Default: 8 KiB, as websockets.
    pub max_line_length: usize,
    /// The largest HTTP head (start line and all headers), in bytes. Default: 64 KiB.
    pub max_head_size: usize,
    /// The largest body of a non-101 response that a client reads, in bytes.
    /// Default: 1 MiB, as websockets.
    pub max_body_size: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_headers: 128,
            max_line_length: 8192,
            max_head_size: 64 << 10,
            max_body_size: 1 << 20,
        }
    }
}

impl HttpLimits {
    setters! {
        max_headers, with_max_headers: usize;
        max_line_length, with_max_line_length: usize;
        max_head_size, with_max_head_size: usize;
        max_body_size, with_max_body_size: usize;
    }
}
