//! Sending one message to many connections: [`broadcast`].

use std::fmt;

use wskit_proto::Message;
use wskit_proto::frame::{OpCode, write_frame};

use crate::connection::Connection;

/// Send `message` to every connection in `connections`, without waiting.
///
/// This is synchronous and never blocks: it queues the message on each connection and returns.
/// The message is framed once for all uncompressed server connections (compressed connections
/// keep per-connection compression state, and clients mask each frame, so those are framed one
/// by one). Connections that are not open, or whose write buffer is above their `write_limit`
/// (slow readers), are skipped rather than waited for: a slow client must not hold up the
/// others. The returned [`Broadcast`] tells which were skipped.
///
/// ```no_run
/// # fn f(server: &wskit::Server) {
/// let report = wskit::broadcast(&server.connections(), "tick");
/// if !report.skipped.is_empty() {
///     eprintln!("{} slow or closed connections skipped", report.skipped.len());
/// }
/// # }
/// ```
pub fn broadcast<'a, I>(connections: I, message: impl Into<Message>) -> Broadcast
where
    I: IntoIterator<Item = &'a Connection>,
{
    let message = message.into();
    let frame = frame(&message);
    let mut report = Broadcast {
        sent: 0,
        skipped: Vec::new(),
    };
    for connection in connections {
        report.queue(connection, &message, &frame);
    }
    report
}

/// `message` as one unmasked, uncompressed frame: what every connection of a broadcast gets.
pub(crate) fn frame(message: &Message) -> Vec<u8> {
    let opcode = if message.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let mut frame = Vec::new();
    write_frame(&mut frame, true, 0, opcode, message.as_bytes(), None);
    frame
}

impl Broadcast {
    /// Queue `message` (framed as `frame`) on `connection`, and count it as sent or skipped.
    pub(crate) fn queue(&mut self, connection: &Connection, message: &Message, frame: &[u8]) {
        if connection.queue_broadcast(message, frame) {
            self.sent += 1;
        } else {
            self.skipped.push(connection.clone());
        }
    }
}

/// What [`broadcast`] did.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// How many connections the message was queued on.
    pub sent: usize,
    /// The connections skipped: not open, or too slow (write buffer above the high mark).
    pub skipped: Vec<Connection>,
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skipped: Vec<u64> = self.skipped.iter().map(Connection::id).collect();
        f.debug_struct("Broadcast")
            .field("sent", &self.sent)
            .field("skipped", &skipped)
            .finish()
    }
}
