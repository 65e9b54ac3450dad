//! Routes: path patterns with parameters mapped to handlers, like Python websockets' `route`.
//!
//! ```no_run
//! use wskit::{Connection, Router};
//!
//! async fn room(ws: Connection) -> wskit::Result<()> {
//!     let name = ws.params().get("room").unwrap_or_default().to_owned();
//!     ws.send(format!("welcome to {name}")).await
//! }
//!
//! async fn user(ws: Connection) -> wskit::Result<()> {
//!     let id: u64 = ws.params().parse("id").expect("the route asks for a u64");
//!     ws.send(format!("user {id}")).await
//! }
//!
//! # async fn run() -> wskit::Result<()> {
//! let router = Router::new()
//!     .route("/rooms/{room}", room)
//!     .route("/users/{id}", user)
//!     .param::<u64>("id");
//! let server = wskit::route(router, "localhost:8765").await?;
//! server.run().await
//! # }
//! ```
//!
//! Patterns are `matchit`'s (the matcher axum uses): `{name}` matches one segment, `{*name}`
//! the rest of the path; a static segment wins over a parameter. Paths are matched without
//! their query. Parameters are percent-decoded and must be UTF-8 (else 400); a path no route
//! matches gets 404, and so does one whose parameter does not parse as the type its route asks
//! for ([`param`](Router::param)). Routing happens during the handshake, after
//! `process_request` (which can answer any path itself, a page or a health check) and before
//! the WebSocket handshake: a refused path never reaches a handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::connection::Connection;
use crate::server::{HandlerResult, Serve};
use crate::session::route::{RouteIndex, RouteTable};

pub use crate::session::handler::Routed;

type BoxHandler =
    Box<dyn Fn(Connection) -> Pin<Box<dyn Future<Output = Routed> + Send>> + Send + Sync>;

/// Path patterns mapped to handlers. Serve it with [`route`](crate::route) (TCP),
/// [`unix_route`](crate::unix_route) (a Unix socket), or on a stream with
/// [`Accept::router`](crate::server::Accept::router) and [`handle`](Self::handle). In an axum
/// app, axum's router does this job.
#[derive(Default)]
pub struct Router {
    table: RouteTable,
    handlers: Vec<BoxHandler>,
}

impl Router {
    /// A router without routes (every path gets 404).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `handler` on the paths that match `pattern` (`/rooms/{room}`).
    ///
    /// # Panics
    ///
    /// If the pattern is invalid or conflicts with an earlier route's: a mistake in the
    /// program, found when the router is built.
    pub fn route<H, F>(mut self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Connection) -> F + Send + Sync + 'static,
        F: Future + Send + 'static,
        F::Output: HandlerResult,
    {
        self.table.insert(pattern);
        self.handlers.push(Box::new(move |ws| {
            let future = handler(ws);
            Box::pin(async move { Routed::of(future.await) })
        }));
        self
    }

    /// The last route's parameter `name` must parse as a `T`: a path where it does not is no
    /// match (404). The handler then reads it with [`Params::parse`](crate::Params::parse).
    ///
    /// # Panics
    ///
    /// Without a route before, or if that route has no parameter `name`.
    pub fn param<T: std::str::FromStr>(mut self, name: &str) -> Self {
        self.table.check_last(
            name,
            std::any::type_name::<T>(),
            Arc::new(|value| value.parse::<T>().is_ok()),
        );
        self
    }

    /// Run the handler of the route `ws` matched: for a connection opened on a stream with
    /// [`Accept::router`](crate::server::Accept::router). A connection that matched no route
    /// of this router fails (1011 on a server).
    pub fn handle(&self, ws: Connection) -> impl Future<Output = Routed> + Send + 'static {
        match ws.data::<RouteIndex>().and_then(|i| self.handlers.get(i.0)) {
            Some(handler) => handler(ws),
            None => Box::pin(async { Routed::unmatched() }),
        }
    }

    pub(crate) fn table(&self) -> Arc<RouteTable> {
        Arc::new(self.table.clone())
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Router").field(&self.table).finish()
    }
}

/// The handler `serve` calls for a router.
pub(crate) fn handler(
    router: Router,
) -> impl Fn(Connection) -> Pin<Box<dyn Future<Output = Routed> + Send>> + Send + Sync + 'static {
    let router = Arc::new(router);
    move |ws| Box::pin(router.handle(ws))
}

/// Serve `router` on `addr`, as [`serve`](crate::serve) serves a handler: Python websockets'
/// `route(url_map, ...)`. Every option of `serve` applies.
pub fn route(
    router: Router,
    addr: impl Into<crate::server::BindAddr>,
) -> Serve<
    impl Fn(Connection) -> Pin<Box<dyn Future<Output = Routed> + Send>> + Send + Sync + 'static,
> {
    let table = router.table();
    with_routes(crate::serve(handler(router), addr), table)
}

/// Serve `router` on a Unix socket at `path` (the file must not exist).
#[cfg(unix)]
pub fn unix_route(
    router: Router,
    path: impl Into<std::path::PathBuf>,
) -> Serve<
    impl Fn(Connection) -> Pin<Box<dyn Future<Output = Routed> + Send>> + Send + Sync + 'static,
> {
    let table = router.table();
    with_routes(crate::unix_serve(handler(router), path), table)
}

/// `serve` with the router's patterns matched during its handshakes.
fn with_routes<H>(mut serve: Serve<H>, table: Arc<RouteTable>) -> Serve<H> {
    serve.options.policy.routes = Some(table);
    serve
}
