//! What the examples take from Python's standard library: `datetime.utcnow().isoformat()`,
//! `random.random()`, and a page for the browser demos. Not an example itself (Cargo only
//! builds `examples/*.rs` and `examples/*/main.rs`); each example picks what it needs.

#![allow(dead_code)]

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use wskit::server::Handshake;
use wskit::{Request, Response};

/// The UTC time in ISO 8601 with milliseconds, like `2026-11-22T01:23:45.678Z`.
pub(crate) fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (days, secs) = (now.as_secs() / 86_400, now.as_secs() % 86_400);
    // The proleptic Gregorian calendar from a day count (Howard Hinnant's civil_from_days).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

/// A random number in [0, 1), like Python's `random.random()` (from the random keys that the
/// standard library draws for its hash maps: fine for jitter, not for secrets).
pub(crate) fn random() -> f64 {
    (RandomState::new().hash_one(()) >> 11) as f64 / (1u64 << 53) as f64
}

/// A `process_request` hook for the browser demos: a plain `GET /` (no `Upgrade: websocket`)
/// gets `html`, other plain requests 404, WebSocket handshakes go through.
pub(crate) fn serve_page(
    html: &'static str,
) -> impl Fn(&mut Handshake<'_>, &Request) -> Option<Response> + Send + Sync + 'static {
    move |_, request| {
        let upgrade = request.headers.get("Upgrade");
        if upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return None;
        }
        if request.path != "/" {
            return Some(Response::new(404, "Not found.\n"));
        }
        let mut response = Response::new(200, html);
        response
            .headers
            .insert("Content-Type", "text/html; charset=utf-8");
        Some(response)
    }
}
