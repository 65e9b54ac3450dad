//! An in-memory client/server pair that shuttles bytes between two [`Protocol`]s.

use crate::connection::{Config, Event, Protocol};
use crate::error::Error;
use crate::frame::{OpCode, write_frame};

/// A client and a server, connected by memory.
pub(crate) struct Pair {
    pub(crate) client: Protocol,
    pub(crate) server: Protocol,
    /// Errors returned by `receive_*` on each side, in order.
    pub(crate) client_errors: Vec<Error>,
    pub(crate) server_errors: Vec<Error>,
    /// Events drained from each side by `drive`.
    pub(crate) client_events: Vec<Event>,
    pub(crate) server_events: Vec<Event>,
    /// Whether each side's transport was closed (its `should_close_transport` acted on).
    pub(crate) client_closed_transport: bool,
    pub(crate) server_closed_transport: bool,
}

impl Pair {
    /// Connect a client and a server with default configs.
    pub(crate) fn open() -> Self {
        Self::open_with(Config::default(), Config::default())
    }

    /// Connect with these configs and complete the opening handshake.
    pub(crate) fn open_with(client: Config, server: Config) -> Self {
        let mut pair = Self::new(client, server);
        pair.handshake();
        pair.client_events.clear();
        pair.server_events.clear();
        pair
    }

    /// A pair before the handshake.
    pub(crate) fn new(client: Config, server: Config) -> Self {
        let mut client = Protocol::client(client);
        let mut n = 0u8;
        client.set_mask_generator(move || {
            n = n.wrapping_add(1);
            [n, 0x5a, 0xa5, n ^ 0xff]
        });
        Self {
            client,
            server: Protocol::server(server),
            client_errors: Vec::new(),
            server_errors: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_closed_transport: false,
            server_closed_transport: false,
        }
    }

    /// Send the client's request, accept it on the server, deliver the response.
    pub(crate) fn handshake(&mut self) {
        let request = self.client.connect_request("example.com", "/chat");
        self.client.send_request(&request).unwrap();
        self.drive();
        let request = match self.server_events.pop() {
            Some(Event::Request(request)) => request,
            other => panic!("expected a request, got {other:?}"),
        };
        let response = self.server.accept(&request).unwrap();
        self.server.send_response(&response).unwrap();
        self.drive();
        assert!(matches!(self.client_events.last(), Some(Event::Response(r)) if r.status == 101));
    }

    /// Move bytes both ways until neither side has anything to send, then act on transport
    /// closes: a side that should close its transport makes the other side see EOF.
    pub(crate) fn drive(&mut self) {
        for _ in 0..100 {
            let to_server = self.client.take_data_to_send();
            let to_client = self.server.take_data_to_send();
            if !to_server.is_empty()
                && !self.server_closed_transport
                && let Err(e) = self.server.receive_data(&to_server)
            {
                self.server_errors.push(e);
            }
            if !to_client.is_empty()
                && !self.client_closed_transport
                && let Err(e) = self.client.receive_data(&to_client)
            {
                self.client_errors.push(e);
            }
            self.drain_events();
            let mut progressed = !to_server.is_empty() || !to_client.is_empty();
            if self.server.should_close_transport() && !self.server_closed_transport {
                self.server_closed_transport = true;
                self.flush_then_eof_to_client();
                progressed = true;
            }
            if self.client.should_close_transport() && !self.client_closed_transport {
                self.client_closed_transport = true;
                let rest = self.client.take_data_to_send();
                if !rest.is_empty()
                    && let Err(e) = self.server.receive_data(&rest)
                {
                    self.server_errors.push(e);
                }
                if let Err(e) = self.server.receive_eof() {
                    self.server_errors.push(e);
                }
                progressed = true;
            }
            self.drain_events();
            if !progressed {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    fn flush_then_eof_to_client(&mut self) {
        let rest = self.server.take_data_to_send();
        if !rest.is_empty()
            && let Err(e) = self.client.receive_data(&rest)
        {
            self.client_errors.push(e);
        }
        if let Err(e) = self.client.receive_eof() {
            self.client_errors.push(e);
        }
        // The server closed its transport, so it sees the end too.
        if let Err(e) = self.server.receive_eof() {
            self.server_errors.push(e);
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
    }

    /// Deliver raw bytes to the server as if the client had sent them.
    pub(crate) fn server_receives(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let result = self.server.receive_data(bytes);
        self.drain_events();
        result
    }

    /// Deliver raw bytes to the client as if the server had sent them.
    pub(crate) fn client_receives(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let result = self.client.receive_data(bytes);
        self.drain_events();
        result
    }
}

/// A frame as a client sends it (masked with a fixed key).
pub(crate) fn client_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(
        &mut out,
        fin,
        rsv,
        opcode,
        payload,
        Some([0x11, 0x22, 0x33, 0x44]),
    );
    out
}

/// A frame as a server sends it (unmasked).
pub(crate) fn server_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, fin, rsv, opcode, payload, None);
    out
}
