//! Per-connection data: values of any type that the handshake hooks leave for the handler,
//! one per type, like `http::Extensions`.

use std::any::{Any, TypeId};
use std::fmt;

/// Values keyed by their type. Empty until a hook inserts something; a connection without data
/// holds no allocation for it.
#[derive(Default)]
pub(crate) struct ConnectionData {
    /// Few entries (an authenticated user, a route's parameters, a session): a vector scanned
    /// by type is smaller and faster than a map.
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl ConnectionData {
    /// Store `value`, returning the value of the same type it replaces, if any.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        let boxed: Box<dyn Any + Send + Sync> = Box::new(value);
        match self.entries.iter_mut().find(|(key, _)| *key == id) {
            Some((_, slot)) => {
                let old = std::mem::replace(slot, boxed);
                old.downcast::<T>().ok().map(|old| *old)
            }
            None => {
                self.entries.push((id, boxed));
                None
            }
        }
    }

    /// The value of type `T`, if one was stored.
    pub(crate) fn get<T: 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.downcast_ref::<T>())
    }

    /// Take the value of type `T` out, if one was stored.
    pub(crate) fn remove<T: 'static>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let index = self.entries.iter().position(|(key, _)| *key == id)?;
        let (_, value) = self.entries.swap_remove(index);
        value.downcast::<T>().ok().map(|value| *value)
    }
}

impl fmt::Debug for ConnectionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionData")
            .field("len", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut data = ConnectionData::default();
        assert_eq!(data.insert(7u32), None);
        assert_eq!(data.insert(String::from("alice")), None);
        assert_eq!(data.get::<u32>(), Some(&7));
        assert_eq!(data.insert(8u32), Some(7));
        assert_eq!(data.get::<String>().map(String::as_str), Some("alice"));
        assert_eq!(data.get::<u64>(), None);
        assert_eq!(data.remove::<u32>(), Some(8));
        assert_eq!(data.get::<u32>(), None);
        assert_eq!(data.remove::<u32>(), None);
    }
}

/// What the I/O layer knows about a connection when it opens it (both layers').
#[derive(Debug, Default)]
pub(crate) struct ConnectionInfo {
    /// What the handshake hooks left for the handler (boxed: most connections have none).
    pub(crate) data: Option<Box<ConnectionData>>,
    pub(crate) request: Option<Box<wskit_proto::Request>>,
    pub(crate) response: Option<Box<wskit_proto::Response>>,
    pub(crate) local_addr: Option<crate::PeerAddr>,
    pub(crate) remote_addr: Option<crate::PeerAddr>,
}

/// Expands to the accessors of what a connection learnt when it opened (its handshake, its
/// data, its addresses) inside the `impl` of a connection type of either layer, whose
/// `shared.info` is a [`ConnectionInfo`] and that has a `data` method.
macro_rules! info_accessors {
    () => {
        /// The parameters of the route this connection matched (a router's): empty without
        /// a router.
        pub fn params(&self) -> &$crate::Params {
            static NONE: $crate::Params = $crate::Params::EMPTY;
            self.data::<$crate::Params>().unwrap_or(&NONE)
        }

        /// The username this connection authenticated with (a server's `basic_auth`), if
        /// any.
        pub fn username(&self) -> Option<&str> {
            self.data::<$crate::Username>().map(|user| user.0.as_str())
        }

        /// The opening handshake request: received by a server, sent by a client.
        pub fn request(&self) -> Option<&wskit_proto::Request> {
            self.shared.info.request.as_deref()
        }

        /// The opening handshake response received by a client; `None` on a server, which
        /// does not keep the response it sent (a few hundred bytes per connection; what it
        /// holds is available as [`subprotocol`](Self::subprotocol) and
        /// [`is_compressed`](Self::is_compressed)).
        pub fn response(&self) -> Option<&wskit_proto::Response> {
            self.shared.info.response.as_deref()
        }

        /// The request path with its query (e.g. `/chat?room=1`).
        pub fn path(&self) -> &str {
            self.shared
                .info
                .request
                .as_ref()
                .map_or("/", |r| r.path.as_str())
        }

        /// The local address of the transport.
        pub fn local_addr(&self) -> Option<&$crate::PeerAddr> {
            self.shared.info.local_addr.as_ref()
        }

        /// The remote address of the transport.
        pub fn remote_addr(&self) -> Option<&$crate::PeerAddr> {
            self.shared.info.remote_addr.as_ref()
        }
    };
}

pub(crate) use info_accessors;
