//! The guides in `docs/guide/`, compiled as doc tests so that their code cannot rot. Only
//! built for `cargo test --doc`: not part of the API.

#![cfg(doctest)]

#[doc = include_str!("../../docs/guide/README.md")]
struct GuidesIndex;

#[doc = include_str!("../../docs/guide/getting-started.md")]
struct GettingStartedGuide;

#[doc = include_str!("../../docs/guide/server.md")]
struct ServerGuide;

#[doc = include_str!("../../docs/guide/client.md")]
struct ClientGuide;

#[doc = include_str!("../../docs/guide/tls.md")]
struct TlsGuide;

#[doc = include_str!("../../docs/guide/broadcasting.md")]
struct BroadcastingGuide;

#[doc = include_str!("../../docs/guide/application-state.md")]
struct ApplicationStateGuide;

#[doc = include_str!("../../docs/guide/patterns.md")]
struct PatternsGuide;

#[doc = include_str!("../../docs/guide/limits-and-timeouts.md")]
struct LimitsAndTimeoutsGuide;

#[doc = include_str!("../../docs/guide/compression.md")]
struct CompressionGuide;

#[doc = include_str!("../../docs/guide/keepalive.md")]
struct KeepaliveGuide;

#[doc = include_str!("../../docs/guide/logging.md")]
struct LoggingGuide;

#[cfg(feature = "sync")]
#[doc = include_str!("../../docs/guide/sync.md")]
struct SyncGuide;

#[doc = include_str!("../../docs/guide/faq.md")]
struct FaqGuide;

#[doc = include_str!("../../docs/guide/streams.md")]
struct StreamsGuide;

#[doc = include_str!("../../docs/guide/deployment.md")]
struct DeploymentGuide;

#[doc = include_str!("../../docs/guide/routing.md")]
struct RoutingGuide;

#[doc = include_str!("../../docs/guide/proxies.md")]
struct ProxiesGuide;

#[doc = include_str!("../../docs/guide/scaling.md")]
struct ScalingGuide;

/// Settings and records can grow without breaking users: none of them can be built with a
/// struct expression outside wskit (build them from `default()` or a constructor, then set
/// fields or chain `with_*` methods), and no match on an error enum can be exhaustive.
///
/// ```compile_fail,E0639
/// let _ = wskit::Limits { max_message_size: None, ..wskit::Limits::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::HttpLimits { max_headers: 1, ..wskit::HttpLimits::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::proto::Config { streaming: true, ..wskit::proto::Config::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::DeflateConfig { mem_level: 1, ..wskit::DeflateConfig::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::ConnectionConfig { max_queue: 1, ..wskit::ConnectionConfig::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::Backoff { factor: 2.0, ..wskit::Backoff::default() };
/// ```
///
/// ```compile_fail,E0639
/// let _ = wskit::Closed { rcvd: None, ..wskit::Closed::default() };
/// ```
///
/// ```compile_fail,E0639
/// let r = wskit::Request::get("/");
/// let _ = wskit::Request { path: "/x".into(), ..r };
/// ```
///
/// ```compile_fail,E0639
/// let r = wskit::Response::new(200, "");
/// let _ = wskit::Response { status: 404, ..r };
/// ```
///
/// ```compile_fail,E0004
/// fn code(e: wskit::Error) -> u8 {
///     match e {
///         wskit::Error::ConnectionClosed(_) | wskit::Error::Protocol(_)
///         | wskit::Error::Handshake(_) | wskit::Error::InvalidStatus(_)
///         | wskit::Error::InvalidUri(_) | wskit::Error::Timeout(_) | wskit::Error::Tls(_)
///         | wskit::Error::Io(_) | wskit::Error::InvalidState(_)
///         | wskit::Error::Concurrency(_) | wskit::Error::NotText => 0,
///     }
/// }
/// ```
///
/// The same values, built the way that compiles:
///
/// ```
/// use std::time::Duration;
/// let limits = wskit::Limits::default().with_max_message_size(None);
/// let config = wskit::ConnectionConfig::default().with_max_queue(1);
/// let backoff = wskit::Backoff::default().with_factor(2.0).with_max(Duration::from_secs(5));
/// let mut request = wskit::Request::get("/");
/// request.path = "/x".into();
/// assert_eq!((limits.max_message_size, config.max_queue, backoff.factor), (None, 1, 2.0));
/// ```
struct NonExhaustiveTypes;
