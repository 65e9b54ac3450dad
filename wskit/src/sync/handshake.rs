//! Driving the TLS and WebSocket opening handshakes over a blocking socket, for both roles,
//! within a deadline.

use std::io;
use std::time::Instant;

use wskit_proto::{Event, Protocol};

use super::connection::{Socket, Transport};
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
            return Err(crate::error::handshake_failure(protocol, error));
        }
    }
}

/// A socket as `Read + Write` whose every read and write ends by `deadline`: for rustls'
/// handshake and a proxy's exchange, which read and write many times (a peer that sends a
/// byte now and then must not stretch the deadline).
pub(crate) struct Deadlined<'a> {
    pub(crate) socket: &'a Socket,
    pub(crate) deadline: Option<Instant>,
}

impl Deadlined<'_> {
    fn timeout(&self) -> io::Result<Option<std::time::Duration>> {
        remaining(self.deadline).map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
    }
}

impl io::Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.set_read_timeout(self.timeout()?)?;
        self.socket.read(buf)
    }
}

impl io::Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.set_write_timeout(self.timeout()?)?;
        self.socket.write(buf)
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
    let mut io = Deadlined {
        socket: &socket,
        deadline,
    };
    while tls.is_handshaking() {
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
