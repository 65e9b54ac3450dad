//! The connection state machine.

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
    /// The closing handshake is complete or the connection failed.
    Closed,
}
