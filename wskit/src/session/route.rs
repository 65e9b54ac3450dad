//! Routes without a runtime: path patterns matched with `matchit` (the matcher axum uses), the
//! parameters percent-decoded and checked against the types the routes ask for. The tokio
//! layer's [`Router`](crate::Router) dispatches to handlers on top of it; the handshake
//! policy runs it after `process_request`, so an unmatched path is answered before any
//! handler runs.

use std::fmt;
use std::sync::Arc;

use wskit_proto::Response;

/// A route's parameter check: whether the decoded value parses as the type asked for.
type Check = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A route: its pattern, and its typed parameters (name, type, check).
type RouteSpec = (String, Vec<(String, &'static str, Check)>);

/// The routes' patterns, for the handshake.
#[derive(Clone, Default)]
pub(crate) struct RouteTable {
    matcher: matchit::Router<usize>,
    /// Per route, in insertion order: the pattern and its typed parameters.
    routes: Vec<RouteSpec>,
}

impl RouteTable {
    /// Add `pattern` as route number `routes.len()`.
    ///
    /// # Panics
    ///
    /// If the pattern is invalid or conflicts with an earlier one (a programming error, found
    /// when the router is built).
    pub(crate) fn insert(&mut self, pattern: &str) {
        let index = self.routes.len();
        if let Err(error) = self.matcher.insert(pattern, index) {
            panic!("invalid route {pattern:?}: {error}");
        }
        self.routes.push((pattern.to_owned(), Vec::new()));
    }

    /// Require parameter `name` of the last route to pass `check` (parse as `type_name`).
    ///
    /// # Panics
    ///
    /// Without a route, or if the last route has no parameter `name`.
    pub(crate) fn check_last(&mut self, name: &str, type_name: &'static str, check: Check) {
        let (pattern, checks) = self
            .routes
            .last_mut()
            .expect("a route before its parameter");
        assert!(
            pattern.contains(&format!("{{{name}}}")) || pattern.contains(&format!("{{*{name}}}")),
            "route {pattern:?} has no parameter {name:?}"
        );
        checks.push((name.to_owned(), type_name, check));
    }

    /// The route for `target` (a request target: its query is not matched) and its
    /// parameters; or the response that refuses it: 404 for no route (or a parameter that
    /// does not parse as its route asks), 400 for a parameter that is not percent-encoded
    /// UTF-8.
    pub(crate) fn find(&self, target: &str) -> Result<(usize, Params), Response> {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let not_found = || Response::new(404, "Not Found\n");
        let Ok(found) = self.matcher.at(path) else {
            return Err(not_found());
        };
        let index = *found.value;
        let mut params = Vec::with_capacity(found.params.len());
        for (name, raw) in found.params.iter() {
            let Some(value) = percent_decode(raw) else {
                return Err(Response::new(
                    400,
                    format!("Bad Request: parameter {name} is not percent-encoded UTF-8\n"),
                ));
            };
            params.push((name.to_owned(), value));
        }
        let params = Params(params);
        for (name, type_name, check) in &self.routes[index].1 {
            if !params.get(name).is_some_and(|value| check(value)) {
                tracing::debug!(path, parameter = %name, type_name, "no route: a parameter does not parse");
                return Err(not_found());
            }
        }
        Ok((index, params))
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(pattern, _)| pattern))
            .finish()
    }
}

/// The parameters of the route a connection matched (`/rooms/{room}` on `/rooms/caf%C3%A9`:
/// `room` = `café`), percent-decoded. A handler of a [`Router`](crate::Router) finds them in
/// [`Connection::params`](crate::Connection::params).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub(crate) const EMPTY: Self = Self(Vec::new());

    /// The value of parameter `name`, decoded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of parameter `name` as a `T`, if it parses (a route that asked for `T` with
    /// [`Router::param`](crate::Router::param) only matched if it does).
    pub fn parse<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get(name)?.parse().ok()
    }

    /// The parameters, in the pattern's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the route has no parameter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The route a connection matched, by number, for the router's dispatch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteIndex(pub(crate) usize);

/// `%XX` escapes decoded, the result UTF-8; `None` for an escape that is not two hex digits or
/// bytes that are not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // Two hex digits: `from_str_radix` alone would take `+A`.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut table = RouteTable::default();
        table.insert("/rooms/{room}");
        table.insert("/users/{id}");
        table.check_last("id", "u64", Arc::new(|v| v.parse::<u64>().is_ok()));
        table.insert("/files/{*path}");
        table
    }

    #[test]
    fn paths_match_without_their_query_and_parameters_are_decoded() {
        let table = table();
        let (index, params) = table.find("/rooms/caf%C3%A9?token=x").unwrap();
        assert_eq!((index, params.get("room")), (0, Some("café")));
        let (index, params) = table.find("/users/42").unwrap();
        assert_eq!((index, params.parse::<u64>("id")), (1, Some(42)));
        let (index, params) = table.find("/files/a/b%20c").unwrap();
        assert_eq!((index, params.get("path")), (2, Some("a/b c")));
    }

    #[test]
    fn no_route_is_404_and_a_bad_encoding_400() {
        let table = table();
        for (target, status) in [
            ("/", 404),
            ("/rooms", 404),
            ("/rooms/a/b", 404),
            ("/users/alice", 404),
            ("/users/-1", 404),
            ("/users/99999999999999999999999", 404),
            ("/rooms/%zz", 400),
            ("/rooms/%C3", 400),
            ("/rooms/%ff%fe", 400),
            ("/rooms/%4", 400),
        ] {
            assert_eq!(table.find(target).unwrap_err().status, status, "{target}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid route")]
    fn conflicting_routes_are_refused_when_built() {
        let mut table = RouteTable::default();
        table.insert("/rooms/{room}");
        table.insert("/rooms/{name}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%+A"), None);
        assert_eq!(percent_decode("%-1"), None);
    }
}
