//! TLS for `wss://`, with rustls.

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

/// Client TLS settings.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientTls {}

impl ClientTls {
    /// Run the TLS handshake with `host` over `stream`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>> {
        let _ = (host, stream);
        Err(Error::Tls("not implemented yet".into()))
    }
}
