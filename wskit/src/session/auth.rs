//! HTTP Basic authentication (RFC 7617) without a runtime: the `Authorization` header parsed,
//! credentials compared in constant time, the 401 challenge. A check that needs I/O (a
//! database look-up) is a future the tokio layer awaits between the steps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wskit_proto::{Request, Response};

/// A check of the tokio layer: a future that says whether the credentials are good.
pub(crate) type AsyncCheck =
    dyn Fn(String, String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync;

/// A check of the username and password.
type CheckFn = dyn Fn(&str, &str) -> bool + Send + Sync;

/// How credentials are checked.
#[derive(Clone)]
enum Check {
    /// A fixed list of usernames and passwords.
    Credentials(Arc<[(String, String)]>),
    /// A function of the username and password.
    Function(Arc<CheckFn>),
    /// An async function of the username and password.
    Async(Arc<AsyncCheck>),
}

/// HTTP Basic authentication for a server's handshakes (and everything else it answers, such
/// as the pages `process_request` serves): a realm, and the credentials a client must send.
/// Like Python websockets' `basic_auth`. A client without good credentials gets 401 with
/// `WWW-Authenticate: Basic realm="...", charset="UTF-8"`; an authenticated connection's
/// handler finds the username with [`Connection::username`](crate::Connection::username).
///
/// ```no_run
/// use wskit::BasicAuth;
///
/// # async fn run() -> wskit::Result<()> {
/// let server = wskit::serve(|ws: wskit::Connection| async move {
///     let user = ws.username().unwrap_or_default().to_owned();
///     ws.send(format!("Hello {user}!")).await
/// }, "localhost:8765")
/// .basic_auth(BasicAuth::new("chat").credentials([("alice", "wonderland")]))
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BasicAuth {
    realm: String,
    check: Check,
}

/// The username of an authenticated connection, in its data (see
/// [`Connection::username`](crate::Connection::username)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(pub String);

impl BasicAuth {
    /// Authentication for `realm` (shown by browsers when they ask), with no credentials yet:
    /// set them with [`credentials`](Self::credentials), [`check`](Self::check) or
    /// [`check_async`](Self::check_async). Until then every client is refused.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            check: Check::Credentials(Arc::from([])),
        }
    }

    /// Accept these usernames and passwords. Each comparison takes the same time whatever the
    /// strings have in common, and every pair is compared, so the time taken does not tell
    /// how close a guess was nor which usernames exist.
    pub fn credentials<U, P>(mut self, credentials: impl IntoIterator<Item = (U, P)>) -> Self
    where
        U: Into<String>,
        P: Into<String>,
    {
        let list: Vec<(String, String)> = credentials
            .into_iter()
            .map(|(u, p)| (u.into(), p.into()))
            .collect();
        self.check = Check::Credentials(list.into());
        self
    }

    /// Accept the credentials for which `check(username, password)` is true. Compare secrets
    /// in constant time in it (as [`credentials`](Self::credentials) does).
    pub fn check(mut self, check: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> Self {
        self.check = Check::Function(Arc::new(check));
        self
    }

    /// Accept the credentials for which the future `check(username, password)` resolves to
    /// true: a database look-up, say. It runs while the handshake waits, within
    /// `open_timeout`.
    pub fn check_async<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn(String, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.check = Check::Async(Arc::new(move |user, password| {
            Box::pin(check(user, password))
        }));
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// What the request's credentials call for.
    pub(crate) fn step(&self, request: &Request) -> AuthStep {
        let Some((user, password)) = credentials(request) else {
            return AuthStep::Refused(self.challenge());
        };
        match &self.check {
            Check::Credentials(list) => {
                // Every pair compared, without stopping at a match.
                let mut found = false;
                for (u, p) in list.iter() {
                    found |= constant_time_eq(u.as_bytes(), user.as_bytes())
                        & constant_time_eq(p.as_bytes(), password.as_bytes());
                }
                self.decide(found, user)
            }
            Check::Function(check) => {
                let found = check(&user, &password);
                self.decide(found, user)
            }
            Check::Async(check) => AuthStep::Pending(check(user.clone(), password), user),
        }
    }

    /// The step after a check said `found` for `user`.
    pub(crate) fn decide(&self, found: bool, user: String) -> AuthStep {
        if found {
            AuthStep::Accepted(Username(user))
        } else {
            AuthStep::Refused(self.challenge())
        }
    }

    /// The 401 that asks for credentials.
    pub(crate) fn challenge(&self) -> Response {
        let mut response = Response::new(401, "Unauthorized\n");
        let realm = self.realm.replace('\\', "\\\\").replace('"', "\\\"");
        response.headers.append(
            "WWW-Authenticate",
            format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        );
        response
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// Where authentication stands for a request.
pub(crate) enum AuthStep {
    /// Good credentials.
    Accepted(Username),
    /// No or bad credentials: the 401 to send.
    Refused(Response),
    /// An async check to await, for this username.
    Pending(Pin<Box<dyn Future<Output = bool> + Send>>, String),
}

/// The username and password of an `Authorization: Basic` header, if there is exactly one and
/// it is well-formed (base64 of `user:password` in UTF-8).
pub(crate) fn credentials(request: &Request) -> Option<(String, String)> {
    let mut values = request.headers.get_all("Authorization");
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = wskit_proto::handshake::base64_decode(token.trim())?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `a == b`, in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // Keep the loop from being turned into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request {
        let mut request = Request::get("/");
        if let Some(value) = authorization {
            request.headers.append("Authorization", value);
        }
        request
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            wskit_proto::handshake::base64_encode(user_password.as_bytes())
        )
    }

    #[test]
    fn credentials_are_parsed_strictly() {
        assert_eq!(
            credentials(&request(Some(&basic("alice:won:der")))),
            Some(("alice".into(), "won:der".into()))
        );
        assert_eq!(
            credentials(&request(Some(&basic("élise:mot")))),
            Some(("élise".into(), "mot".into()))
        );
        for bad in [
            None,
            Some("Bearer abc".to_owned()),
            Some("Basic".to_owned()),
            Some("Basic !!!!".to_owned()),
            Some(basic("no-colon")),
            Some(format!(
                "Basic {}",
                wskit_proto::handshake::base64_encode(&[0xff, b':'])
            )),
        ] {
            assert_eq!(credentials(&request(bad.as_deref())), None, "{bad:?}");
        }
        let mut twice = request(Some(&basic("a:b")));
        twice.headers.append("Authorization", basic("a:b"));
        assert_eq!(credentials(&twice), None);
    }

    #[test]
    fn the_list_accepts_its_pairs_only_and_refuses_with_a_challenge() {
        let auth = BasicAuth::new("my \"realm\"").credentials([("alice", "secret"), ("bob", "pw")]);
        for (pair, ok) in [
            ("alice:secret", true),
            ("bob:pw", true),
            ("alice:pw", false),
            ("alice:secret2", false),
            ("carol:secret", false),
            (":", false),
        ] {
            match auth.step(&request(Some(&basic(pair)))) {
                AuthStep::Accepted(Username(user)) => {
                    assert!(ok, "{pair}");
                    assert_eq!(user, pair.split(':').next().unwrap());
                }
                AuthStep::Refused(response) => {
                    assert!(!ok, "{pair}");
                    assert_eq!(response.status, 401);
                    assert_eq!(
                        response.headers.get("WWW-Authenticate"),
                        Some("Basic realm=\"my \\\"realm\\\"\", charset=\"UTF-8\"")
                    );
                }
                AuthStep::Pending(..) => panic!("no async check here"),
            }
        }
        assert!(matches!(auth.step(&request(None)), AuthStep::Refused(_)));
        assert!(matches!(
            BasicAuth::new("empty").step(&request(Some(&basic("a:b")))),
            AuthStep::Refused(_)
        ));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(constant_time_eq(b"", b""));
    }
}
