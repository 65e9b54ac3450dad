//! A set of connections that cleans up after itself: [`ConnectionSet`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use wskit_proto::{Message, State};

use crate::broadcast::Broadcast;
use crate::connection::Connection;

/// A set of connections shared by handlers: the clients of a chat room, the subscribers of a
/// topic. Python's `CLIENTS = set()` with `CLIENTS.add(websocket)`, without its
/// `try: ... finally: CLIENTS.remove(websocket)`: a connection leaves the set by itself once it
/// is closed, whichever way its handler ended (`?` included), so the set cannot leak closed
/// connections.
///
/// Cheap to clone: clones share the same set. Closed connections are dropped from it at the
/// next call that looks at it (every method does, with one atomic load per member and no
/// lock of theirs), so a closed connection's handle stays at most until then.
///
/// ```no_run
/// use wskit::{Connection, ConnectionSet};
///
/// async fn relay(ws: Connection, clients: ConnectionSet) -> wskit::Result<()> {
///     clients.insert(&ws);
///     while let Some(message) = ws.clone().next().await {
///         let message = message?; // an error ends the handler: `ws` leaves the set anyway
///         let others = clients.connections();
///         wskit::broadcast(others.iter().filter(|c| **c != ws), message);
///     }
///     Ok(())
/// }
///
/// # async fn run() -> wskit::Result<()> {
/// let clients = ConnectionSet::new();
/// let server = wskit::serve(move |ws| relay(ws, clients.clone()), "localhost:8765").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ConnectionSet {
    inner: Arc<Mutex<HashMap<u64, Connection>>>,
}

impl ConnectionSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `connection`; `false` if it was in the set already. A connection that is already
    /// closed is not added.
    pub fn insert(&self, connection: &Connection) -> bool {
        let mut set = self.lock();
        if connection.state() == State::Closed {
            return false;
        }
        set.insert(connection.id(), connection.clone()).is_none()
    }

    /// Remove `connection`; `false` if it was not in the set.
    pub fn remove(&self, connection: &Connection) -> bool {
        self.lock().remove(&connection.id()).is_some()
    }

    /// Whether `connection` is in the set (and not closed).
    pub fn contains(&self, connection: &Connection) -> bool {
        self.lock().contains_key(&connection.id())
    }

    /// How many connections are in the set (closed ones excluded).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the set is empty (closed connections excluded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connections in the set, in no particular order.
    pub fn connections(&self) -> Vec<Connection> {
        self.lock().values().cloned().collect()
    }

    /// [`broadcast`](crate::broadcast()) `message` to every connection in the set.
    pub fn broadcast(&self, message: impl Into<Message>) -> Broadcast {
        let message = message.into();
        let frame = crate::broadcast::frame(&message);
        let mut report = Broadcast {
            sent: 0,
            skipped: Vec::new(),
        };
        // One pass under the set's lock: closed connections leave, the others get the frame
        // (queuing takes each connection's own lock, never the set's, and wakes its task
        // without running it). Cloning the handles out first cost more than the queuing.
        // Connections that need the message framed for themselves (compressed, or clients)
        // are done after the set's lock is released: that is the slow part.
        let mut own_frames = Vec::new();
        self.locked().retain(|_, connection| {
            if connection.is_finished() {
                return false;
            }
            match connection.queue_broadcast_frame(&frame) {
                Some(true) => report.sent += 1,
                Some(false) => report.skipped.push(connection.clone()),
                None => own_frames.push(connection.clone()),
            }
            true
        });
        for connection in &own_frames {
            report.queue(connection, &message, &frame);
        }
        report
    }

    /// Whether the set is empty, checked only if its lock is free at once (`false` when it is
    /// busy, with a broadcast say): for sweeping empty sets without waiting on any.
    pub(crate) fn is_surely_empty(&self) -> bool {
        match self.inner.try_lock() {
            Ok(mut set) => {
                set.retain(|_, connection| !connection.is_finished());
                set.is_empty()
            }
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                let mut set = poisoned.into_inner();
                set.retain(|_, connection| !connection.is_finished());
                set.is_empty()
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    /// The set, without its closed connections (checked without their locks).
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        let mut set = self.locked();
        set.retain(|_, connection| !connection.is_finished());
        set
    }

    /// The set as it is, closed connections included.
    fn locked(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        // A panic while the lock was held left the map whole: it only inserts and removes.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for ConnectionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<u64> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        f.debug_struct("ConnectionSet").field("ids", &ids).finish()
    }
}
