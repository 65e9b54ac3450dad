//! What a handler returns, and how its end closes its connection: one decision for the async
//! and the blocking servers.

use std::fmt;

use wskit_proto::CloseCode;

use crate::error::Error;

/// What a handler may return: `()` or `Result<(), E>` with a displayable error.
pub trait HandlerResult: Send {
    /// `Err` with a description when the handler failed.
    fn into_result(self) -> Result<(), String>;

    /// Whether the handler ended with a [`wskit::Error`](Error) saying that a connection is
    /// closed (abnormally: a normal closure is `Ok` already). When its own connection is
    /// closed too, the server logs that at debug level rather than as a handler failure.
    #[doc(hidden)]
    fn is_closed_connection(&self) -> bool {
        false
    }
}

impl HandlerResult for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

/// A [`wskit::Error`](Error) saying that the connection closed normally (1000/1001 both
/// ways) is not a failure of the handler: a handler that sends with `?` until its client leaves
/// ends that way. The error may also come boxed (`Box<dyn std::error::Error + Send + Sync>`).
impl<E: fmt::Display + Send + 'static> HandlerResult for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        match self {
            Ok(()) => Ok(()),
            Err(e) if wskit_error(&e).is_some_and(Error::is_closed_ok) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn is_closed_connection(&self) -> bool {
        matches!(self, Err(e) if wskit_error(e).is_some_and(Error::is_closed))
    }
}

/// The [`wskit::Error`](Error) in a handler's error, if it is one or a boxed one.
fn wskit_error(error: &dyn std::any::Any) -> Option<&Error> {
    if let Some(error) = error.downcast_ref::<Error>() {
        return Some(error);
    }
    if let Some(boxed) = error.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>() {
        return boxed.downcast_ref::<Error>();
    }
    error
        .downcast_ref::<Box<dyn std::error::Error + Send>>()
        .and_then(|boxed| boxed.downcast_ref::<Error>())
}

/// The close code once a handler ended, with its output or its panic, logging how it ended.
/// `open`: whether its connection is still open.
pub(crate) fn handler_outcome<R: HandlerResult>(
    id: u64,
    outcome: std::thread::Result<R>,
    open: bool,
) -> CloseCode {
    match outcome {
        Ok(output) => {
            // A handler stopped by its own connection closing (the client vanished) did
            // nothing wrong; a closed connection that is not its own (a proxy's upstream,
            // say) is a failure like any other.
            let own_closure = output.is_closed_connection() && !open;
            match output.into_result() {
                Ok(()) => CloseCode::NORMAL,
                Err(error) if own_closure => {
                    tracing::debug!(id, %error, "connection handler ended: connection closed");
                    CloseCode::NORMAL
                }
                Err(error) => {
                    tracing::error!(id, %error, "connection handler failed");
                    CloseCode::INTERNAL_ERROR
                }
            }
        }
        Err(panic) => {
            let message = panic_message(&panic);
            tracing::error!(id, panic = message.as_str(), "connection handler panicked");
            CloseCode::INTERNAL_ERROR
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}

/// What a route's handler returned, for the server's logs and close code.
#[derive(Debug)]
pub struct Routed {
    result: Result<(), String>,
    closed_connection: bool,
}

impl HandlerResult for Routed {
    fn into_result(self) -> Result<(), String> {
        self.result
    }

    fn is_closed_connection(&self) -> bool {
        self.closed_connection
    }
}

impl Routed {
    /// What `output`, a route's handler's, says.
    pub(crate) fn of<R: HandlerResult>(output: R) -> Self {
        let closed_connection = output.is_closed_connection();
        Self {
            result: output.into_result(),
            closed_connection,
        }
    }

    /// A connection that matched no route of the router that handles it.
    pub(crate) fn unmatched() -> Self {
        Self {
            result: Err("the connection matched no route of this router".to_owned()),
            closed_connection: false,
        }
    }
}
