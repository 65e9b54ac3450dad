//! Integration tests over real loopback sockets: wskit client against wskit server.

mod support;

mod basics;
mod broadcast;
