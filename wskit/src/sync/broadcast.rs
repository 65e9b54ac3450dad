//! [`broadcast`]: one message to many blocking connections, waiting at most a second, once,
//! for a slow one.

use std::fmt;

use wskit_proto::Message;

use super::connection::Connection;

/// Send `message` to every connection in `connections` that can take it now, as Python
/// websockets' `broadcast`: a connection that is not open, is in the middle of a fragmented
/// message, or whose write buffer is above the high mark (a slow client) is skipped rather than
/// waited for. Each connection's frame is written by the thread writing to it if there is one,
/// or by this one, which waits for a full socket at most a second, once per slow client: what
/// it could not write is kept for the connection's next writer (or its reader thread, within a
/// second); later broadcasts to it are queued without waiting, and skipped once its buffer
/// (the kept bytes count) passes the high mark.
pub fn broadcast<'a, I>(connections: I, message: impl Into<Message>) -> Broadcast
where
    I: IntoIterator<Item = &'a Connection>,
{
    let message = message.into();
    let mut report = Broadcast {
        sent: 0,
        skipped: Vec::new(),
    };
    for connection in connections {
        if connection.queue_broadcast(&message) {
            report.sent += 1;
        } else {
            report.skipped.push(connection.clone());
        }
    }
    report
}

/// What [`broadcast`] did.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// How many connections the message was queued for.
    pub sent: usize,
    /// The connections skipped: closed, sending a fragmented message, or too slow.
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
