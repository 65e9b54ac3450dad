//! Builder methods shared by [`Serve`](crate::server::Serve), [`Accept`](crate::server::Accept)
//! and [`Connect`](crate::client::Connect): compression, limits, queue and buffer sizes,
//! timeouts; and the server's handshake options. One definition, so that every entry point
//! documents and applies them the same way.

/// The protocol settings of a server of either layer: streaming (the session assembles
/// messages), failures held back for the application (Autobahn's strict behaviour), no
/// `User-Agent`.
pub(crate) fn server_protocol() -> wskit_proto::Config {
    client_protocol().with_user_agent(None)
}

/// The protocol settings of a client of either layer (see [`server_protocol`]).
pub(crate) fn client_protocol() -> wskit_proto::Config {
    wskit_proto::Config::default()
        .with_streaming(true)
        .with_defer_failures(true)
}

/// Expands to the shared builder methods inside an `impl` block whose type has an `options`
/// field with `protocol` (`wskit_proto::Config`), `connection` (`ConnectionConfig`) and
/// `open_timeout` (`Option<Duration>`) fields.
macro_rules! shared_options {
    () => {
        /// permessage-deflate settings, or `None` to turn compression off.
        /// Default: on, with [`DeflateConfig::default`](wskit_proto::DeflateConfig::default)
        /// (window 12 bits and memLevel 5 as Python websockets, compression level 1).
        pub fn compression(mut self, deflate: Option<wskit_proto::DeflateConfig>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol).compression = deflate;
            self
        }

        /// Turn compression off.
        pub fn no_compression(self) -> Self {
            self.compression(None)
        }

        /// The largest message received, in bytes, counted after decompression; `None` for no
        /// limit. A bigger one fails the connection with 1009. Default: 1 MiB.
        pub fn max_size(mut self, bytes: Option<usize>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol)
                .limits
                .max_message_size = bytes;
            self
        }

        /// The largest frame received, in bytes; `None` for the message limit only.
        /// Default: `None`.
        pub fn max_frame_size(mut self, bytes: Option<usize>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol)
                .limits
                .max_frame_size = bytes;
            self
        }

        /// The most fragments in one received message; `None` for no limit. Default: 65 536.
        pub fn max_fragments(mut self, count: Option<usize>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol)
                .limits
                .max_fragments = count;
            self
        }

        /// All receive limits at once (messages, frames, fragments, HTTP headers).
        pub fn limits(mut self, limits: wskit_proto::Limits) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol).limits = limits;
            self
        }

        /// The most incoming frames buffered per connection before reading from the socket
        /// stops (TCP then pushes back on the peer). Default: 16.
        pub fn max_queue(mut self, frames: usize) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).max_queue = frames.max(1);
            self
        }

        /// The write buffer high mark, in bytes: `send` waits while more is buffered, until
        /// it drains to the low mark, a quarter of it. Default: 32 KiB.
        pub fn write_limit(mut self, bytes: usize) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).write_limit = bytes;
            std::sync::Arc::make_mut(&mut self.options.connection).write_limit_low = bytes / 4;
            self
        }

        /// The write buffer high and low marks, in bytes.
        pub fn write_limits(mut self, high: usize, low: usize) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).write_limit = high;
            std::sync::Arc::make_mut(&mut self.options.connection).write_limit_low = low.min(high);
            self
        }

        /// The time allowed for the opening handshake (connecting and TLS included);
        /// `None` waits forever. Default: 10 s.
        pub fn open_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            self.options.open_timeout = timeout;
            self
        }

        /// How often to send a keepalive ping; `None` disables keepalive. Default: 20 s.
        pub fn ping_interval(mut self, interval: Option<std::time::Duration>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).ping_interval = interval;
            self
        }

        /// How long to wait for the pong of a keepalive ping before closing with 1011;
        /// `None` waits forever. Default: 20 s.
        pub fn ping_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).ping_timeout = timeout;
            self
        }

        /// How long to wait for the closing handshake and for the peer to close the TCP
        /// connection, before closing it. Default: 10 s.
        pub fn close_timeout(mut self, timeout: std::time::Duration) -> Self {
            std::sync::Arc::make_mut(&mut self.options.connection).close_timeout = timeout;
            self
        }
    };
}

pub(crate) use shared_options;

/// Expands to the server's handshake options inside an `impl` block whose type has an `options`
/// field with `protocol` (`wskit_proto::Config`) and `policy`
/// ([`HandshakePolicy`](crate::session::policy::HandshakePolicy)) fields: origins,
/// subprotocols, the hooks, headers. Shared by [`Serve`](crate::server::Serve) and
/// [`Accept`](crate::server::Accept).
macro_rules! server_options {
    // The async API's: its `Handshake` and `Connection` in the docs.
    () => {
        $crate::options::server_options!("crate::server::Handshake", "crate::Connection");
    };
    ($handshake:literal, $connection:literal) => {
        /// Allowed values of the `Origin` header: exact (`"https://example.com"`) or patterns with
        /// `*` (`"https://*.example.com"`). Others get 403. Default: any origin, or none.
        pub fn origins<I, T>(mut self, origins: I) -> Self
        where
            I: IntoIterator<Item = T>,
            T: Into<String>,
        {
            self.options.policy.origins = Some(origins.into_iter().map(|o| $crate::session::policy::Origin(o.into())).collect());
            self
        }

        /// With [`origins`](Self::origins): also accept requests without an `Origin` header (not
        /// from a browser). Default: rejected once origins are set.
        pub fn allow_missing_origin(mut self) -> Self {
            self.options
                .policy
                .origins
                .get_or_insert_with(Vec::new)
                .push($crate::session::policy::Origin(String::new()));
            self
        }

        /// Subprotocols this server supports, in order of preference. The first one the client
        /// also offers is selected. Default: none.
        pub fn subprotocols<I, T>(mut self, subprotocols: I) -> Self
        where
            I: IntoIterator<Item = T>,
            T: Into<String>,
        {
            std::sync::Arc::make_mut(&mut self.options.protocol).subprotocols =
                subprotocols.into_iter().map(Into::into).collect();
            self
        }

        /// Choose the subprotocol yourself: called with the request and the subprotocols the client
        /// offered; return one of them, or `None` for no subprotocol.
        pub fn select_subprotocol(
            mut self,
            select: impl Fn(&wskit_proto::Request, &[String]) -> Option<String> + Send + Sync + 'static,
        ) -> Self {
            self.options.policy.select_subprotocol = Some(std::sync::Arc::new(select));
            self
        }

        /// Inspect each request before the handshake: return `Some(response)` to answer it with
        /// that HTTP response instead (a health check, 401/403, 404, an HTML page for a plain GET),
        /// or `None` to go on with the WebSocket handshake. Every request that parses comes here,
        /// whatever its method and HTTP version.
        ///
        #[doc = concat!("The [`Handshake`](", $handshake, ") gives the client's address and takes data for the handler")]
        #[doc = concat!("([`Handshake::insert`](", $handshake, "::insert), read with")]
        #[doc = concat!("[`Connection::data`](", $connection, "::data)): the user a token belongs to, say.")]
        pub fn process_request(
            mut self,
            process: impl Fn(&mut $crate::session::policy::Handshake<'_>, &wskit_proto::Request) -> Option<wskit_proto::Response> + Send + Sync + 'static,
        ) -> Self {
            self.options.policy.process_request = Some(std::sync::Arc::new(process));
            self
        }

        /// Modify the response before it is sent (add headers, or replace it).
        pub fn process_response(
            mut self,
            process: impl Fn(&wskit_proto::Request, &mut wskit_proto::Response) + Send + Sync + 'static,
        ) -> Self {
            self.options.policy.process_response = Some(std::sync::Arc::new(process));
            self
        }

        /// Add a header to every handshake response.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol)
                .extra_headers
                .push((name.into(), value.into()));
            self
        }

        /// The `Server` header: `Some(value)`, or `None` to send none. Default: `wskit/VERSION`.
        pub fn server_header(mut self, value: Option<String>) -> Self {
            self.options.policy.server_header = value;
            self
        }
    };
}

pub(crate) use server_options;

/// Expands to the client's builder methods (the handshake request, proxies, redirects,
/// backoff) inside an `impl` block whose type has an `options` field with `protocol`,
/// `proxy`, `max_redirects` and `backoff` fields: the async and the blocking `Connect`.
macro_rules! client_options {
    () => {
        /// The `Origin` header to send.
        pub fn origin(mut self, origin: impl Into<String>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol).origin = Some(origin.into());
            self
        }

        /// Subprotocols to offer, in order of preference.
        pub fn subprotocols<I, S>(mut self, subprotocols: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            std::sync::Arc::make_mut(&mut self.options.protocol).subprotocols =
                subprotocols.into_iter().map(Into::into).collect();
            self
        }

        /// Add a header to the handshake request.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol)
                .extra_headers
                .push((name.into(), value.into()));
            self
        }

        /// The `User-Agent` header: `Some(value)`, or `None` to send none.
        /// Default: `wskit/VERSION`.
        pub fn user_agent(mut self, value: Option<String>) -> Self {
            std::sync::Arc::make_mut(&mut self.options.protocol).user_agent = value;
            self
        }

        /// Connect through this proxy: `http://[user:password@]host[:port]` (HTTP CONNECT, with
        /// Basic credentials), `socks5://` (the client resolves the server's name) or
        /// `socks5h://` (the proxy does), with `user:password@` for SOCKS5's username and password
        /// method. A `wss://` connection through a proxy is TLS end to end with the server; the
        /// redirects and the reconnecting client's attempts go through the proxy too, and
        /// `open_timeout` bounds the whole way. Default: the proxy the environment names, as curl
        /// reads it (`http_proxy` for `ws://`, `https_proxy` for `wss://`, else `all_proxy`;
        /// upper-case names too, except `HTTP_PROXY`, which CGI programs get from a request's
        /// `Proxy:` header; `no_proxy` exempts hosts, domains and their subdomains, IP ranges like
        /// `10.0.0.0/8`, or `*`). A proxy's failures that may pass (it closed, a 5xx, a SOCKS5
        /// unreachable or refused) are transient for the reconnecting client.
        pub fn proxy(mut self, url: impl Into<String>) -> Self {
            self.options.proxy = $crate::session::proxy::ProxySetting::Url(url.into());
            self
        }

        /// Connect straight to the server, whatever proxy the environment names.
        pub fn no_proxy(mut self) -> Self {
            self.options.proxy = $crate::session::proxy::ProxySetting::Direct;
            self
        }

        /// The most redirects followed. Default: 10.
        pub fn max_redirects(mut self, count: usize) -> Self {
            self.options.max_redirects = count;
            self
        }

        /// The delays between reconnection attempts (see [`reconnecting`](Self::reconnecting)).
        pub fn backoff(mut self, backoff: $crate::Backoff) -> Self {
            self.options.backoff = backoff;
            self
        }
    };
}

pub(crate) use client_options;
