//! Driving the TLS and WebSocket opening handshakes over a blocking socket, for both roles,
//! within a deadline.

use std::io;
use std::time::Instant;

use wskit_proto::{Event, Protocol};

#[cfg(feature = "tls")]
use super::connection::Socket;
use super::connection::Transport;
use crate::error::{Error, Result};
#[cfg(feature = "tls")]
use crate::tls::rustls;

/// The time left before `deadline`, as a socket timeout (`None`: no deadline); a timeout error
/// once it has passed.
pub(crate) fn remaining(deadline: Option<Instant>) -> Result<Option<std::time::Duration>> {
    match deadline {
        None => Ok(None),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(Error::Timeout("opening handshake"))
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// A timeout error of the socket as the handshake's timeout.
pub(crate) fn io_error(error: io::Error) -> Error {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout("opening handshake"),
        _ => Error::Io(error),
    }
}

/// Write everything the protocol has queued.
pub(crate) fn flush(
    transport: &Transport,
    protocol: &mut Protocol,
    deadline: Option<Instant>,
) -> Result<()> {
    let data = protocol.take_data_to_send();
    transport.socket.set_write_timeout(remaining(deadline)?)?;
    transport
        .write_all(&data, &|| {
            deadline.is_some_and(|deadline| Instant::now() >= deadline)
        })
        .map_err(io_error)
}

/// Read until the protocol produces its handshake event (a request on a server, a response on
/// a client). Bytes that arrive behind it stay buffered in the protocol.
pub(crate) fn read_handshake_event(
    transport: &Transport,
    protocol: &mut Protocol,
    deadline: Option<Instant>,
) -> Result<Event> {
    let mut buf = vec![0u8; 4096];
    let mut plain = Vec::new();
    loop {
        if let Some(event) = protocol.poll_event() {
            return Ok(event);
        }
        transport.socket.set_read_timeout(remaining(deadline)?)?;
        plain.clear();
        let n = match transport.read_into(&mut buf, &mut plain) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        };
        if n == 0 {
            // The peer left during the handshake.
            return Err(Error::Handshake(Box::new(
                wskit_proto::HandshakeError::UnexpectedEof,
            )));
        }
        if let Err(error) = protocol.receive_data(&plain) {
            // A client's rejected response is still delivered as an event first.
            if let Some(event) = protocol.poll_event() {
                return Err(match (event, error) {
                    (
                        Event::Response(response),
                        wskit_proto::Error::Handshake(wskit_proto::HandshakeError::InvalidStatus {
                            ..
                        }),
                    ) => Error::InvalidStatus(response),
                    (_, error) => error.into(),
                });
            }
            return Err(error.into());
        }
    }
}

/// A socket as `Read + Write`, for rustls' handshake.
#[cfg(feature = "tls")]
struct SocketIo<'a>(&'a Socket);

#[cfg(feature = "tls")]
impl io::Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

#[cfg(feature = "tls")]
impl io::Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Run the TLS handshake of `tls` over `socket`, within `deadline`.
#[cfg(feature = "tls")]
pub(crate) fn tls_handshake(
    socket: Socket,
    mut tls: rustls::Connection,
    deadline: Option<Instant>,
) -> Result<Transport> {
    let mut io = SocketIo(&socket);
    while tls.is_handshaking() {
        socket.set_read_timeout(remaining(deadline)?)?;
        socket.set_write_timeout(remaining(deadline)?)?;
        match tls.complete_io(&mut io) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::Timeout("opening handshake"));
            }
            Err(e) => return Err(crate::tls::handshake_error(e)),
        }
    }
    // What the handshake left to send (a server's session tickets) goes with the first write.
    Ok(Transport {
        socket,
        tls: Some(std::sync::Mutex::new(tls)),
    })
}
