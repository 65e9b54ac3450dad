//! TLS for `wss://`, with [rustls] and its `ring` provider.
//!
//! Clients connect to `wss://` URIs with no setup: the server's certificate is checked against
//! the Mozilla root certificates bundled by `webpki-roots`. [`Connect`] has methods to trust the
//! system's roots instead ([`Connect::native_roots`]), to trust more CA certificates
//! ([`Connect::ca_file`]), or to bring a whole [`rustls::ClientConfig`]
//! ([`Connect::tls_config`]).
//!
//! ```no_run
//! # async fn run() -> wskit::Result<()> {
//! let ws = wskit::connect("wss://localhost:8765")
//!     .ca_file("ca.pem")
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Servers serve `wss://` with a certificate chain and its private key, given to
//! [`Serve::tls`]:
//!
//! ```no_run
//! use wskit::{Connection, ServerTls};
//!
//! # async fn run() -> wskit::Result<()> {
//! let tls = ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! let server = wskit::serve(|ws: Connection| async move { drop(ws) }, "0.0.0.0:8765")
//!     .tls(tls)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! All TLS failures, from reading a PEM file to a certificate the client does not trust, are
//! reported as [`Error::Tls`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
#[cfg(feature = "rustls")]
use tokio::net::TcpStream;
#[cfg(feature = "rustls")]
use tokio_rustls::client::TlsStream;
#[cfg(feature = "rustls")]
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[cfg(feature = "rustls")]
use crate::client::Connect;
use crate::error::{Error, Result};
#[cfg(feature = "rustls")]
use crate::server::Serve;

/// The rustls crate that wskit uses, to build a [`rustls::ClientConfig`] or a
/// [`rustls::ServerConfig`] for [`Connect::tls_config`] or [`ServerTls::from_config`].
pub use rustls;

/// The ALPN protocol offered and accepted: WebSocket runs over HTTP/1.1.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The crypto provider of every config built here: ring, whatever the process default is.
fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

// ===== errors =====

/// A TLS configuration error with what was being done and, if any, the file it was done with.
#[derive(Debug)]
struct ConfigError {
    what: &'static str,
    path: Option<PathBuf>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ConfigError {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            path: None,
            source: None,
        }
    }

    fn path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    fn source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A PEM error: the I/O error itself when there is one, so that callers can find its
    /// [`io::ErrorKind`] among the sources.
    fn pem(self, error: pem::Error) -> Self {
        match error {
            pem::Error::Io(error) => self.source(error),
            error => self.source(error),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)?;
        if let Some(path) = &self.path {
            write!(f, " {}", path.display())?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Self::Tls(Box::new(error))
    }
}

/// tokio-rustls reports TLS errors (a certificate not trusted, an alert from the peer, a peer
/// that does not speak TLS) as [`io::Error`]s wrapping a [`rustls::Error`]: unwrap those into
/// [`Error::Tls`]. Other I/O errors (a reset, an early EOF) stay [`Error::Io`].
pub(crate) fn handshake_error(error: io::Error) -> Error {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        match error.into_inner() {
            Some(inner) => Error::Tls(inner),
            None => Error::Tls("TLS handshake failed".into()),
        }
    } else {
        Error::Io(error)
    }
}

// ===== client =====

/// Where the client's trusted root certificates come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The Mozilla roots bundled by `webpki-roots`.
    #[default]
    WebPki,
    /// The operating system's roots, loaded by `rustls-native-certs`.
    Native,
}

/// Client TLS settings, kept by [`Connect`]. The `ClientConfig` is built on the first
/// `wss://` connection and cached, shared by the clones of the `Connect` (so a reconnecting
/// client reads its CA files once); every setter starts a fresh cache.
#[derive(Clone, Default)]
pub(crate) struct ClientTls {
    pub(crate) roots: Roots,
    pub(crate) ca_files: Vec<PathBuf>,
    pub(crate) danger_accept_invalid_certs: bool,
    pub(crate) config: Option<Arc<ClientConfig>>,
    cache: Arc<Mutex<Option<Arc<ClientConfig>>>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots)
            .field("ca_files", &self.ca_files)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .field("custom_config", &self.config.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Run the TLS handshake with `host` over `stream`.
    #[cfg(feature = "rustls")]
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>> {
        let config = self.client_config().await?;
        let server_name = server_name(host)?;
        TlsConnector::from(config)
            .connect(server_name, stream)
            .await
            .map_err(handshake_error)
    }

    /// Forget the cached config (and stop sharing it with clones) before a setting changes.
    pub(crate) fn changed(&mut self) -> &mut Self {
        self.cache = Arc::default();
        self
    }

    fn is_default(&self) -> bool {
        self.config.is_none()
            && self.roots == Roots::WebPki
            && self.ca_files.is_empty()
            && !self.danger_accept_invalid_certs
    }

    #[cfg(feature = "rustls")]
    async fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = self.ready_config()? {
            return Ok(config);
        }
        // Reading files and the system's roots blocks: keep it off the runtime's threads.
        let settings = self.clone();
        tokio::task::spawn_blocking(move || settings.client_config_blocking())
            .await
            .map_err(|e| ConfigError::new("building the TLS configuration failed").source(e))?
    }

    /// The config if it is at hand without reading anything: given, the default, or cached.
    fn ready_config(&self) -> Result<Option<Arc<ClientConfig>>> {
        if let Some(config) = &self.config {
            return Ok(Some(Arc::clone(config)));
        }
        if self.is_default() {
            return default_client_config().map(Some);
        }
        Ok(lock(&self.cache).as_ref().map(Arc::clone))
    }

    /// The config, built (reading files and the system's roots: this blocks) and cached on
    /// first use.
    pub(crate) fn client_config_blocking(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = self.ready_config()? {
            return Ok(config);
        }
        let config = Arc::new(self.build()?);
        *lock(&self.cache) = Some(Arc::clone(&config));
        Ok(config)
    }

    /// A TLS client for `host`, for the blocking client.
    #[cfg(feature = "sync")]
    pub(crate) fn blocking_connection(&self, host: &str) -> Result<rustls::Connection> {
        let config = self.client_config_blocking()?;
        rustls::ClientConnection::new(config, server_name(host)?)
            .map(Into::into)
            .map_err(|e| Error::Tls(Box::new(e)))
    }

    /// Build the config: roots, extra CA certificates, or no verification at all.
    fn build(&self) -> Result<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(Arc::clone(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("invalid TLS protocol versions").source(e))?;
        let mut config = if self.danger_accept_invalid_certs {
            let verifier = DangerAcceptAnyServerCert {
                algorithms: provider().signature_verification_algorithms,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        } else {
            let mut roots = match self.roots {
                Roots::WebPki => webpki_roots(),
                Roots::Native => native_roots()?,
            };
            for path in &self.ca_files {
                add_ca_file(&mut roots, path)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(config)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The default client config, with the webpki roots: built once per process.
fn default_client_config() -> Result<Arc<ClientConfig>> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(Arc::clone(config));
    }
    let config = Arc::new(ClientTls::default().build()?);
    Ok(Arc::clone(DEFAULT.get_or_init(|| config)))
}

fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn native_roots() -> Result<RootCertStore> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "could not load some of the system's root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "ignored invalid system root certificates");
    }
    if added == 0 {
        let mut error = ConfigError::new("found no root certificates on this system");
        if let Some(first) = loaded.errors.into_iter().next() {
            error = error.source(first);
        }
        return Err(error.into());
    }
    Ok(roots)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    let reading = || ConfigError::new("cannot read CA certificates from").path(path);
    let mut count = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| reading().pem(e))? {
        let cert = cert.map_err(|e| reading().pem(e))?;
        roots.add(cert).map_err(|e| {
            ConfigError::new("invalid CA certificate in")
                .path(path)
                .source(e)
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(reading().source("no certificate found").into());
    }
    Ok(())
}

/// The name to check the server's certificate against, and to send as SNI: an IP address
/// literal (IPv6 without brackets, as in [`WsUri::host`](crate::WsUri::host)) or a DNS name.
fn server_name(host: &str) -> Result<ServerName<'static>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| {
        Error::Tls(Box::new(
            ConfigError::new("invalid server name for TLS").source(format!("{host:?}: {e}")),
        ))
    })
}

/// Accepts any server certificate, whoever issued it and whatever name it is for: no protection
/// against an attacker in the middle. The handshake signatures are still verified with the
/// certificate's key, so the server must at least hold the key of the certificate it sent.
#[derive(Debug)]
struct DangerAcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for DangerAcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS settings of `wss://` clients. These apply to `wss://` URIs only (including redirects to
/// them); `ws://` URIs stay plain. A setting that cannot be applied (a missing or invalid CA
/// file, no system roots) fails each connection attempt with [`Error::Tls`].
#[cfg(feature = "rustls")]
impl Connect {
    crate::tls::client_tls_options!();
}

/// Expands to the TLS builder methods of a client (`wss://` settings) inside an `impl` block
/// whose type has an `options.tls` field ([`ClientTls`]): the async and the blocking `Connect`.
macro_rules! client_tls_options {
    () => {
        /// Use this rustls client config for `wss://`, as is. It takes precedence over
        /// [`native_roots`](Self::native_roots), [`ca_file`](Self::ca_file) and
        /// [`danger_accept_invalid_certs`](Self::danger_accept_invalid_certs), whatever the order
        /// of the calls. Set its `alpn_protocols` to `[b"http/1.1"]` if the server needs ALPN.
        /// Default: a config built by wskit, with the webpki roots and ALPN `http/1.1`.
        pub fn tls_config(
            mut self,
            config: std::sync::Arc<$crate::tls::rustls::ClientConfig>,
        ) -> Self {
            self.options.tls.changed().config = Some(config);
            self
        }

        /// Also trust the CA certificates in the PEM file at `path` (one or more
        /// `CERTIFICATE` sections; a self-signed server certificate works too), in addition to
        /// the root certificates. Call it again to add more files.
        ///
        /// The file is read when the first `wss://` connection is made (then cached for clones
        /// of this builder, such as the attempts of a [`reconnecting`](Self::reconnecting)
        /// client), not by this method: a missing or invalid file fails the connection with
        /// [`Error::Tls`], naming the file. Default: no extra CA certificates.
        pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.options.tls.changed().ca_files.push(path.into());
            self
        }

        /// Trust the operating system's root certificates (loaded with `rustls-native-certs` when
        /// the first `wss://` connection is made) instead of the Mozilla roots bundled with
        /// `webpki-roots`. Default: the bundled roots.
        pub fn native_roots(mut self) -> Self {
            self.options.tls.changed().roots = $crate::tls::Roots::Native;
            self
        }

        /// **Danger:** accept any server certificate, expired, self-signed or for another name.
        /// The connection is encrypted but the server is not authenticated, so an attacker in the
        /// middle can read and change everything. For tests and development only. The TLS
        /// handshake signatures are still checked. Default: certificates are verified.
        pub fn danger_accept_invalid_certs(mut self) -> Self {
            self.options.tls.changed().danger_accept_invalid_certs = true;
            self
        }
    };
}

pub(crate) use client_tls_options;

// ===== server =====

/// A server's TLS settings: its certificate chain and private key, or a whole
/// [`rustls::ServerConfig`]. Give it to [`Serve::tls`] to serve `wss://`.
///
/// Configs built by wskit use rustls' safe defaults (TLS 1.2 and 1.3, the `ring` provider),
/// no client authentication, and ALPN `http/1.1`. Cloning is cheap: the config is shared.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Read the certificate chain (PEM, one or more `CERTIFICATE` sections, the server's own
    /// certificate first) and its private key (PEM: PKCS#8 `PRIVATE KEY`, PKCS#1
    /// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) from files. Both may be the same file.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] naming the file if one cannot be read or holds no certificate or key,
    /// or if the key does not match the certificate. For a missing file, the
    /// [`io::Error`] is among the error's sources.
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self> {
        let cert_path = cert_chain_path.as_ref();
        let key_path = key_path.as_ref();
        let reading = || ConfigError::new("cannot read the certificate chain from").path(cert_path);
        let certs = CertificateDer::pem_file_iter(cert_path)
            .map_err(|e| reading().pem(e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| reading().pem(e))?;
        if certs.is_empty() {
            return Err(reading().source("no certificate found").into());
        }
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
            let error = ConfigError::new("cannot read the private key from").path(key_path);
            match e {
                pem::Error::NoItemsFound => error.source("no private key found"),
                e => error.pem(e),
            }
        })?;
        Self::from_parts(certs, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), with the PEM contents in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] if there is no certificate or key, or the key does not match.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let reading = || ConfigError::new("cannot read the PEM certificate chain");
        let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| reading().pem(e))?;
        if certs.is_empty() {
            return Err(reading().source("no certificate found").into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            let error = ConfigError::new("cannot read the PEM private key");
            match e {
                pem::Error::NoItemsFound => error.source("no private key found"),
                e => error.pem(e),
            }
        })?;
        Self::from_parts(certs, key)
    }

    /// Use this rustls server config, as is. Set its `alpn_protocols` to `[b"http/1.1"]` for
    /// clients that need ALPN.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// A TLS server connection, for the blocking server.
    #[cfg(feature = "sync")]
    pub(crate) fn blocking_connection(&self) -> Result<rustls::Connection> {
        rustls::ServerConnection::new(Arc::clone(&self.config))
            .map(Into::into)
            .map_err(|e| Error::Tls(Box::new(e)))
    }

    fn from_parts(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("invalid TLS protocol versions").source(e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ConfigError::new("invalid certificate or private key").source(e))?;
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(Self::from_config(Arc::new(config)))
    }
}

#[cfg(feature = "rustls")]
impl<H> Serve<H> {
    /// Serve `wss://`: run a TLS handshake on each accepted connection, before the WebSocket
    /// handshake and within [`open_timeout`](Self::open_timeout). A client whose TLS
    /// handshake fails or times out is dropped (logged at debug level) and the server keeps
    /// serving. Default: no TLS (`ws://`).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.options.tls = Some(TlsAcceptor::from(tls.config));
        self
    }
}
