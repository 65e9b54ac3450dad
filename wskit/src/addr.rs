//! Addresses: where a connection's transport is, and what a server binds.

use std::fmt;
use std::net::SocketAddr;

/// Where a connection's transport is: a TCP or Unix socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (may be unnamed).
    Unix(Option<std::path::PathBuf>),
    /// Not known: a stream given to [`accept`](crate::accept) without an address.
    Unknown,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Self::Unix(None) => f.write_str("unix:(unnamed)"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// An address to bind: a string to resolve (`"localhost:8765"`) or a socket address.
#[derive(Clone, Debug)]
pub struct BindAddr(pub(crate) BindAddrKind);

#[derive(Clone, Debug)]
pub(crate) enum BindAddrKind {
    Name(String),
    Socket(SocketAddr),
}

impl BindAddr {
    /// The addresses to bind, resolved with std's resolver (this blocks: the blocking server's
    /// way).
    #[cfg(feature = "sync")]
    pub(crate) fn resolve_blocking(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        match &self.0 {
            BindAddrKind::Socket(addr) => Ok(vec![*addr]),
            BindAddrKind::Name(name) => Ok(name.as_str().to_socket_addrs()?.collect()),
        }
    }
}

impl From<&str> for BindAddr {
    fn from(addr: &str) -> Self {
        Self(BindAddrKind::Name(addr.to_owned()))
    }
}

impl From<String> for BindAddr {
    fn from(addr: String) -> Self {
        Self(BindAddrKind::Name(addr))
    }
}

impl From<&String> for BindAddr {
    fn from(addr: &String) -> Self {
        Self(BindAddrKind::Name(addr.clone()))
    }
}

impl From<SocketAddr> for BindAddr {
    fn from(addr: SocketAddr) -> Self {
        Self(BindAddrKind::Socket(addr))
    }
}

impl From<(&str, u16)> for BindAddr {
    fn from((host, port): (&str, u16)) -> Self {
        if host.contains(':') && !host.starts_with('[') {
            Self(BindAddrKind::Name(format!("[{host}]:{port}")))
        } else {
            Self(BindAddrKind::Name(format!("{host}:{port}")))
        }
    }
}
