//! The Autobahn|Testsuite client testee on the blocking API: `autobahn_client` with threads
//! (`wskit::sync`). It fetches the case count from the fuzzing server, runs every case by
//! echoing each message until the server closes, then asks for the reports.
//!
//! ```sh
//! cargo run --release --features sync --example sync_autobahn_client -- ws://127.0.0.1:9001
//! ```
//!
//! Without an argument it reads `AUTOBAHN_URL` (default `ws://127.0.0.1:9001`).

use wskit::Limits;

const AGENT: &str = "wskit-sync";

fn run_case(base: &str, case: u32) -> wskit::Result<()> {
    let uri = format!("{base}/runCase?case={case}&agent={AGENT}");
    let limits = Limits::unlimited().with_max_message_size(Some(64 << 20));
    let ws = wskit::sync::connect(uri).limits(limits).open()?;
    for message in &ws {
        ws.send(message?)?;
    }
    Ok(())
}

fn main() -> wskit::Result<()> {
    let base = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let ws = wskit::sync::connect(format!("{base}/getCaseCount")).open()?;
    let count: u32 = ws
        .recv()?
        .as_text()?
        .trim()
        .parse()
        .map_err(|_| wskit::Error::InvalidUri("the case count is not a number".to_owned()))?;
    ws.close(wskit::CloseCode::NORMAL, "")?;
    println!("running {count} cases against {base}");
    for case in 1..=count {
        // The suite judges each case, failures included; go on with the next.
        if let Err(error) = run_case(&base, case) {
            eprintln!("case {case}: {error}");
        }
    }
    let ws = wskit::sync::connect(format!("{base}/updateReports?agent={AGENT}")).open()?;
    ws.close(wskit::CloseCode::NORMAL, "")?;
    println!("reports updated");
    Ok(())
}
