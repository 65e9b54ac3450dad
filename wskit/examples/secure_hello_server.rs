//! Mirrors `server_secure.py` of "2. wss 安全连接示例" in `seeds/001_dfc3700d69cd8878.txt`
//! (`ssl_context.load_cert_chain(localhost_pem)`; the same in `seeds/003_f7096015a45346c8.txt`):
//! the hello server over `wss://`.
//!
//! The seed loads a self-signed `localhost.pem`; this example makes its own certificate for
//! `localhost` at startup (with `rcgen`), keeps the key in memory, and writes the certificate to
//! `$TMPDIR/wskit-localhost.pem` (`std::env::temp_dir()`), where `secure_hello_client` reads it.
//!
//! ```sh
//! cargo run --example secure_hello_server           # wss://localhost:8765
//! cargo run --example secure_hello_server -- 127.0.0.1:9000
//! ```

use wskit::{Connection, Result, ServerTls};

async fn handler(ws: Connection) -> Result<()> {
    let name = ws.recv().await?;
    println!("<<< {name}");

    let greeting = format!("Hello {name}!");

    ws.send(&greeting).await?;
    println!(">>> {greeting}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let localhost = rcgen::generate_simple_self_signed(["localhost".into()]).expect("a cert");
    let (cert, key) = (localhost.cert.pem(), localhost.signing_key.serialize_pem());
    std::fs::write(std::env::temp_dir().join("wskit-localhost.pem"), &cert)?;
    let ssl_context = ServerTls::from_pem(cert.as_bytes(), key.as_bytes())?;

    let server = wskit::serve(handler, addr).tls(ssl_context).await?;
    server.run_until(wskit::shutdown_signal()).await
}
