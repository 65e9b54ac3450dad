//! Routes on the blocking API: path patterns with parameters mapped to handlers, as the async
//! [`Router`](crate::Router), with the same patterns, parameter checks and refusals (404, 400)
//! during the handshake.
//!
//! ```no_run
//! use wskit::sync::{Connection, Router};
//!
//! fn room(ws: Connection) -> wskit::Result<()> {
//!     let name = ws.params().get("room").unwrap_or_default().to_owned();
//!     ws.send(format!("welcome to {name}"))
//! }
//!
//! fn user(ws: Connection) -> wskit::Result<()> {
//!     let id: u64 = ws.params().parse("id").expect("the route asks for a u64");
//!     ws.send(format!("user {id}"))
//! }
//!
//! let router = Router::new()
//!     .route("/rooms/{room}", room)
//!     .route("/users/{id}", user)
//!     .param::<u64>("id");
//! let server = wskit::sync::route(router, "localhost:8765").start()?;
//! server.run()
//! # ; Ok::<(), wskit::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use super::connection::Connection;
use super::server::Serve;
use crate::session::handler::{HandlerResult, Routed};
use crate::session::route::{RouteIndex, RouteTable};

type BoxHandler = Box<dyn Fn(Connection) -> Routed + Send + Sync>;

/// Path patterns mapped to blocking handlers. Serve it with [`route`].
#[derive(Default)]
pub struct Router {
    table: RouteTable,
    handlers: Vec<BoxHandler>,
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Route the paths that match `pattern` (`/rooms/{room}`, `/files/{*path}`) to
    /// `handler`. A static segment takes priority over a parameter, whatever the order the
    /// routes were added in (matchit's rules).
    ///
    /// # Panics
    ///
    /// If `pattern` is not a valid pattern or conflicts with one added before.
    pub fn route<H, R>(mut self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Connection) -> R + Send + Sync + 'static,
        R: HandlerResult,
    {
        self.table.insert(pattern);
        self.handlers
            .push(Box::new(move |ws| Routed::of(handler(ws))));
        self
    }

    /// Require the parameter `name` of the last route added to parse as a `T`: a path whose
    /// parameter does not is refused with 404, as if no route matched.
    ///
    /// # Panics
    ///
    /// If the last route has no parameter `name`, or no route was added.
    pub fn param<T: std::str::FromStr>(mut self, name: &str) -> Self {
        self.table.check_last(
            name,
            std::any::type_name::<T>(),
            Arc::new(|value| value.parse::<T>().is_ok()),
        );
        self
    }

    /// Run the handler of the route `ws` matched.
    pub fn handle(&self, ws: Connection) -> Routed {
        match ws.data::<RouteIndex>().and_then(|i| self.handlers.get(i.0)) {
            Some(handler) => handler(ws),
            None => Routed::unmatched(),
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Router").field(&self.table).finish()
    }
}

/// Serve `router` on `addr`: as [`serve`](super::serve), with every option, and the paths no
/// route matches refused during the handshake.
pub fn route(
    router: Router,
    addr: impl Into<crate::addr::BindAddr>,
) -> Serve<impl Fn(Connection) -> Routed + Send + Sync + 'static> {
    let table = Arc::new(router.table.clone());
    let router = Arc::new(router);
    let mut serve = super::serve(move |ws| router.handle(ws), addr);
    serve.options.policy.routes = Some(table);
    serve
}

/// Serve `router` on a Unix socket at `path`.
#[cfg(unix)]
pub fn unix_route(
    router: Router,
    path: impl Into<std::path::PathBuf>,
) -> Serve<impl Fn(Connection) -> Routed + Send + Sync + 'static> {
    let table = Arc::new(router.table.clone());
    let router = Arc::new(router);
    let mut serve = super::unix_serve(move |ws| router.handle(ws), path);
    serve.options.policy.routes = Some(table);
    serve
}
