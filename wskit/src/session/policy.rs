//! The server's handshake policy: what answers a client's opening handshake request.
//!
//! No runtime, no clock, no I/O: the I/O layer reads the request, asks [`HandshakePolicy`] for
//! the answer, and writes it. The same decisions serve `serve` and [`accept`] on any stream.
//!
//! [`accept`]: crate::server::accept

use std::sync::Arc;

use wskit_proto::{HandshakeError, Protocol, Request, Response};

use crate::addr::PeerAddr;
use crate::data::ConnectionData;
use crate::session::auth::{BasicAuth, Username};
use crate::session::route::{RouteIndex, RouteTable};

pub(crate) type ProcessRequest =
    dyn Fn(&mut Handshake<'_>, &Request) -> Option<Response> + Send + Sync;
pub(crate) type ProcessResponse = dyn Fn(&Request, &mut Response) + Send + Sync;
pub(crate) type SelectSubprotocol = dyn Fn(&Request, &[String]) -> Option<String> + Send + Sync;

/// A connection whose opening handshake the server is processing, as the handshake hooks see
/// it: what is known about the client, and the data they leave for the handler.
#[derive(Debug)]
pub struct Handshake<'a> {
    remote_addr: &'a PeerAddr,
    data: &'a mut Option<Box<ConnectionData>>,
}

impl Handshake<'_> {
    /// The client's address.
    pub fn remote_addr(&self) -> &PeerAddr {
        self.remote_addr
    }

    /// Store `value` for the connection's handler, which reads it with
    /// [`Connection::data`](crate::Connection::data): one value per type (a newtype per
    /// meaning, e.g. `User(String)`), so nothing needs a global. Returns the value of the same
    /// type it replaces, if any. Values stored for a request that is then answered or refused
    /// are dropped with it.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.data.get_or_insert_default().insert(value)
    }

    /// The value of type `T` stored by an earlier hook, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.data.as_ref()?.get::<T>()
    }

    /// Take the value of type `T` out, if any.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.data.as_mut()?.remove::<T>()
    }
}

/// The hooks and checks of a server's opening handshake, with Python websockets' defaults.
#[derive(Clone)]
pub(crate) struct HandshakePolicy {
    pub(crate) origins: Option<Vec<Origin>>,
    pub(crate) process_request: Option<Arc<ProcessRequest>>,
    pub(crate) process_response: Option<Arc<ProcessResponse>>,
    pub(crate) select_subprotocol: Option<Arc<SelectSubprotocol>>,
    pub(crate) server_header: Option<String>,
    /// HTTP Basic authentication, checked before everything else (the I/O layer runs it:
    /// its check may be a future).
    pub(crate) basic_auth: Option<Arc<BasicAuth>>,
    /// A router's patterns: a request they do not match is refused (404, 400).
    pub(crate) routes: Option<Arc<RouteTable>>,
}

impl Default for HandshakePolicy {
    fn default() -> Self {
        Self {
            origins: None,
            process_request: None,
            process_response: None,
            select_subprotocol: None,
            server_header: Some(concat!("wskit/", env!("CARGO_PKG_VERSION")).to_owned()),
            basic_auth: None,
            routes: None,
        }
    }
}

/// How the policy answered a request.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The response to send: a 101 (the connection opens once it is sent with
    /// `Protocol::send_response`) or a refusal.
    pub(crate) response: Response,
    /// What `process_request` stored for the handler.
    pub(crate) data: Option<Box<ConnectionData>>,
    /// Whether the handshake itself accepted the request and the answer is still its 101: a
    /// 101 from a hook opens nothing (the protocol negotiated nothing for it).
    pub(crate) accepted: bool,
}

impl HandshakePolicy {
    /// The answer to a request that did not parse (or was not HTTP at all), with its status.
    pub(crate) fn answer_unparsed(&self, protocol: &Protocol, error: &HandshakeError) -> Response {
        self.with_server_header(protocol.reject_error(error))
    }

    /// `response` as the answer to `request`, without asking the hooks or the handshake (a
    /// server shutting down): with the `Server` header, through `process_response`.
    pub(crate) fn finish(&self, request: &Request, response: Response) -> Response {
        let mut response = self.with_server_header(response);
        if let Some(process) = &self.process_response {
            process(request, &mut response);
        }
        response
    }

    /// The answer to a request: `process_request` first (it sees every request, and its
    /// answers go out as they are, through `process_response`); then `gate`, the I/O layer's
    /// own refusal if any (a server shutting down, or full); then the WebSocket handshake itself
    /// (origin, subprotocol, extensions), whose refusals carry their status. Every answer gets
    /// the `Server` header and goes through `process_response`.
    pub(crate) fn answer(
        &self,
        protocol: &mut Protocol,
        request: &Request,
        remote: &PeerAddr,
        user: Option<Username>,
        gate: impl FnOnce() -> Option<Response>,
    ) -> Answer {
        let mut handshake_ok = false;
        let mut data: Option<Box<ConnectionData>> = None;
        if let Some(user) = user {
            data.get_or_insert_default().insert(user);
        }
        let answered = self.process_request.as_ref().and_then(|process| {
            process(
                &mut Handshake {
                    remote_addr: remote,
                    data: &mut data,
                },
                request,
            )
        });
        // Then the routes: a path they do not match is answered before a place is taken.
        let answered = answered.or_else(|| self.route(request, &mut data).err());
        let response = match answered.or_else(gate) {
            Some(refusal) => refusal,
            None => match self.handshake(protocol, request) {
                Ok(response) => {
                    handshake_ok = true;
                    response
                }
                Err(error) => {
                    tracing::debug!(%remote, %error, "handshake rejected");
                    protocol.reject_error_in(request.version, &error)
                }
            },
        };
        let response = self.finish(request, response);
        // 101 in HTTP/1.1, 200 for HTTP/2's extended CONNECT.
        let accepted = handshake_ok && response.status == request.opening_status();
        // A 101 that the handshake did not make: nothing was negotiated for it. Nor for a 2xx
        // to an HTTP/2 CONNECT, which opens a tunnel (RFC 9113 section 8.5) nobody serves.
        let opens_a_tunnel = request.version == wskit_proto::HttpVersion::Http2
            && request.method == "CONNECT"
            && (200..300).contains(&response.status);
        if (response.status == 101 || opens_a_tunnel) && !accepted {
            tracing::error!(%remote, status = response.status, "a hook answered a handshake as if it opened; refused with 500 instead");
            return Answer {
                response: self.finish(request, Response::new(500, "Internal Server Error\n")),
                data: None,
                accepted: false,
            };
        }
        Answer {
            response,
            data,
            accepted,
        }
    }

    /// The answer to a request that the Basic authentication refused (the 401), as every
    /// answer goes: with the `Server` header, through `process_response`.
    pub(crate) fn refuse(&self, request: &Request, response: Response) -> Answer {
        Answer {
            response: self.finish(request, response),
            data: None,
            accepted: false,
        }
    }

    /// Match the router's patterns, if any: the route and its parameters go into the
    /// connection's data; the refusal (404, 400) otherwise.
    fn route(
        &self,
        request: &Request,
        data: &mut Option<Box<ConnectionData>>,
    ) -> Result<(), Response> {
        let Some(routes) = &self.routes else {
            return Ok(());
        };
        let (index, params) = routes.find(&request.path)?;
        let data = data.get_or_insert_default();
        data.insert(RouteIndex(index));
        data.insert(params);
        Ok(())
    }

    /// The 101 for a valid handshake from an allowed origin, with the subprotocol chosen.
    fn handshake(
        &self,
        protocol: &mut Protocol,
        request: &Request,
    ) -> Result<Response, HandshakeError> {
        self.check_origin(request)?;
        let subprotocol = match &self.select_subprotocol {
            Some(select) => {
                let offered: Vec<String> = wskit_proto::handshake::header_tokens(
                    &request.headers,
                    "Sec-WebSocket-Protocol",
                )
                .map(str::to_owned)
                .collect();
                select(request, &offered)
            }
            None => protocol.select_subprotocol(request),
        };
        protocol.accept_with_subprotocol(request, subprotocol)
    }

    fn check_origin(&self, request: &Request) -> Result<(), HandshakeError> {
        let Some(allowed) = &self.origins else {
            return Ok(());
        };
        match request.headers.get("Origin") {
            None if allowed.iter().any(|o| o.0.is_empty()) => Ok(()),
            None => Err(HandshakeError::InvalidOrigin(None)),
            Some(origin) if allowed.iter().any(|o| !o.0.is_empty() && o.matches(origin)) => Ok(()),
            Some(origin) => Err(HandshakeError::InvalidOrigin(Some(origin.to_owned()))),
        }
    }

    fn with_server_header(&self, mut response: Response) -> Response {
        if let Some(server) = &self.server_header
            && !response.headers.contains("Server")
        {
            response.headers.append("Server", server.as_str());
        }
        response
    }
}

/// An allowed `Origin`: exact, or a pattern with `*` wildcards; empty for "no `Origin` header".
#[derive(Clone, Debug)]
pub(crate) struct Origin(pub(crate) String);

impl Origin {
    fn matches(&self, origin: &str) -> bool {
        glob_match(self.0.as_bytes(), origin.as_bytes())
    }
}

/// `*` matches any run of characters but `/` (including none); everything else matches
/// itself, case-insensitively (origins are case-insensitive in scheme and host).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] != b'*' && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            p += 1;
            mark = t;
        } else if let Some(s) = star
            && text[mark] != b'/'
        {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        assert!(glob_match(b"https://example.com", b"https://EXAMPLE.com"));
        assert!(glob_match(
            b"https://*.example.com",
            b"https://a.b.example.com"
        ));
        assert!(!glob_match(
            b"https://*.example.com",
            b"https://example.com"
        ));
        assert!(!glob_match(
            b"https://*.example.com",
            b"https://evil.com/.example.com.x"
        ));
        assert!(!glob_match(
            b"https://*.example.com",
            b"https://evil.com/.example.com"
        ));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"http://localhost:*", b"http://localhost:8000"));
        assert!(!glob_match(b"http://localhost", b"http://localhost:8000"));
    }
}
