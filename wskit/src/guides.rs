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

#[doc = include_str!("../../docs/guide/faq.md")]
struct FaqGuide;

#[doc = include_str!("../../docs/guide/deployment.md")]
struct DeploymentGuide;
