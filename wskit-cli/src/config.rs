//! Settings resolved from [`LowArgs`]: numbers parsed, headers split, URIs and addresses
//! checked, defaults filled in, and the terminal looked at. Everything wrong with the command
//! line is found here, before anything connects or binds, and reported as a [`UsageError`]
//! (exit code 2).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::{ConnectArgs, LowArgs, Mode, ServeArgs, Topic, UsageError};

/// The largest message received by default, in bytes: wskit's (and Python websockets') 1 MiB.
pub(crate) const DEFAULT_MAX_SIZE: usize = 1 << 20;
/// The default keepalive ping interval and timeout: wskit's 20 s.
pub(crate) const DEFAULT_PING: Duration = Duration::from_secs(20);
/// `wskit connect`'s default `--linger` when standard input is not a terminal: a script that
/// pipes requests in wants the answers, and the end of its input comes right after them. (At a
/// terminal, Ctrl-D closes at once, as `python -m websockets`.)
pub(crate) const PIPED_LINGER: Duration = Duration::from_secs(1);
/// The address `wskit serve` listens on by default, as `python -m websockets`' examples.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8765";

/// The resolved command line.
#[derive(Debug)]
pub(crate) struct Config {
    /// Log verbosity: 0 (warnings), 1 (`-v`: debug) or 2 and more (`-vv`: trace).
    pub(crate) verbose: u8,
    /// The command to run.
    pub(crate) command: Command,
}

/// A command, ready to run.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print help for a topic.
    Help(Topic),
    /// Print the version.
    Version,
    /// Run the interactive client.
    Connect(ConnectConfig),
    /// Run a server.
    Serve(ServeConfig),
    /// Print a shell's completion script.
    Completions(clap_complete::Shell),
}

/// Settings of `wskit connect`.
#[derive(Debug)]
pub(crate) struct ConnectConfig {
    /// The `ws://` or `wss://` URI, checked.
    pub(crate) uri: String,
    /// Extra handshake headers, as (name, value).
    pub(crate) headers: Vec<(String, String)>,
    /// Subprotocols to offer, in order of preference.
    pub(crate) subprotocols: Vec<String>,
    /// The `Origin` header.
    pub(crate) origin: Option<String>,
    /// Whether to offer permessage-deflate.
    pub(crate) compression: bool,
    /// Extra CA certificate files to trust.
    pub(crate) ca_files: Vec<PathBuf>,
    /// Skip certificate verification (dangerous).
    pub(crate) insecure_no_verify: bool,
    /// The proxy to go through, as a URL (else the environment's).
    pub(crate) proxy: Option<String>,
    /// Go straight to the server, whatever the environment says.
    pub(crate) no_proxy: bool,
    /// The largest message received; `None`: no limit.
    pub(crate) max_size: Option<usize>,
    /// After standard input ends, how long to keep printing messages before closing: until
    /// none arrived for this long.
    pub(crate) linger: Duration,
    /// Whether standard input and output are both terminals: show a prompt and print
    /// messages above the line being typed, as `python -m websockets` does.
    pub(crate) interactive: bool,
    /// Whether standard error is a terminal (status lines then clear the prompt).
    pub(crate) stderr_is_terminal: bool,
}

/// The two servers of `wskit serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServeKind {
    /// Send every message back to its sender.
    Echo,
    /// Send every message to every connected client, the sender included.
    Broadcast,
}

/// Settings of `wskit serve`.
#[derive(Debug)]
pub(crate) struct ServeConfig {
    /// Which server.
    pub(crate) kind: ServeKind,
    /// The address to listen on (`host:port`, resolved when binding).
    pub(crate) addr: String,
    /// The certificate chain and private key PEM files, for `wss://`.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// The largest message received; `None`: no limit.
    pub(crate) max_size: Option<usize>,
    /// Whether to accept permessage-deflate.
    pub(crate) compression: bool,
    /// How often to ping each client; `None`: never.
    pub(crate) ping_interval: Option<Duration>,
    /// How long to wait for a pong; `None`: forever.
    pub(crate) ping_timeout: Option<Duration>,
}

impl Config {
    /// Resolve the raw arguments.
    ///
    /// # Errors
    ///
    /// A [`UsageError`] for a missing or extra argument, or a value that does not parse.
    pub(crate) fn resolve(low: LowArgs) -> Result<Self, UsageError> {
        let command = match low.mode {
            Mode::Help(topic) => Command::Help(topic),
            Mode::Version => Command::Version,
            Mode::Connect(args) => Command::Connect(ConnectConfig::resolve(args)?),
            Mode::Serve(args) => Command::Serve(ServeConfig::resolve(args)?),
            Mode::Completions(shell) => Command::Completions(shell),
            Mode::Missing => {
                return Err(UsageError::new(
                    Topic::Main,
                    "a command is required: connect or serve",
                ));
            }
        };
        Ok(Self {
            verbose: low.verbose,
            command,
        })
    }
}

impl ConnectConfig {
    fn resolve(args: ConnectArgs) -> Result<Self, UsageError> {
        const TOPIC: Topic = Topic::Connect;
        let error = |message: String| UsageError::new(TOPIC, message);
        let mut positional = args.positional.into_iter();
        let uri = positional
            .next()
            .ok_or_else(|| error("the URI is required, e.g. ws://localhost:8765".into()))?;
        if let Some(extra) = positional.next() {
            return Err(error(format!("unexpected argument '{extra}'")));
        }
        wskit::WsUri::parse(&uri).map_err(|e| error(e.to_string()))?;
        let headers = args
            .headers
            .iter()
            .map(|header| parse_header(header).map_err(error))
            .collect::<Result<_, _>>()?;
        for name in &args.subprotocols {
            if !is_token(name) {
                return Err(error(format!("invalid subprotocol name {name:?}")));
            }
        }
        if let Some(origin) = &args.origin
            && !is_field_value(origin)
        {
            return Err(error(format!("invalid origin {origin:?}")));
        }
        let max_size = match &args.max_size {
            Some(size) => parse_size(size).map_err(|e| error(format!("--max-size: {e}")))?,
            None => Some(DEFAULT_MAX_SIZE),
        };
        let linger = match &args.linger {
            Some(secs) => parse_seconds(secs).map_err(|e| error(format!("--linger: {e}")))?,
            None => None,
        };
        let stdin_is_terminal = std::io::stdin().is_terminal();
        Ok(Self {
            uri,
            headers,
            subprotocols: args.subprotocols,
            origin: args.origin,
            compression: !args.no_compression,
            ca_files: args.ca_files.into_iter().map(PathBuf::from).collect(),
            insecure_no_verify: args.insecure_no_verify,
            proxy: args.proxy,
            no_proxy: args.no_proxy,
            max_size,
            linger: linger.unwrap_or(if stdin_is_terminal {
                Duration::ZERO
            } else {
                PIPED_LINGER
            }),
            interactive: stdin_is_terminal && std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        })
    }
}

impl ServeConfig {
    fn resolve(args: ServeArgs) -> Result<Self, UsageError> {
        const TOPIC: Topic = Topic::Serve;
        let error = |message: String| UsageError::new(TOPIC, message);
        let mut positional = args.positional.into_iter();
        let kind = match positional.next().as_deref() {
            Some("echo") => ServeKind::Echo,
            Some("broadcast") => ServeKind::Broadcast,
            Some(other) => {
                return Err(error(format!(
                    "unknown server '{other}' (servers: echo, broadcast)"
                )));
            }
            None => return Err(error("which server? echo or broadcast".into())),
        };
        let addr = positional.next().unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        if let Some(extra) = positional.next() {
            return Err(error(format!("unexpected argument '{extra}'")));
        }
        check_addr(&addr).map_err(error)?;
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (Some(_), None) => return Err(error("--tls-cert needs --tls-key".into())),
            (None, Some(_)) => return Err(error("--tls-key needs --tls-cert".into())),
        };
        let max_size = match &args.max_size {
            Some(size) => parse_size(size).map_err(|e| error(format!("--max-size: {e}")))?,
            None => Some(DEFAULT_MAX_SIZE),
        };
        let seconds = |value: &Option<String>, flag: &str| match value {
            Some(secs) => parse_seconds(secs).map_err(|e| error(format!("{flag}: {e}"))),
            None => Ok(Some(DEFAULT_PING)),
        };
        Ok(Self {
            kind,
            addr,
            tls,
            max_size,
            compression: !args.no_compression,
            ping_interval: seconds(&args.ping_interval, "--ping-interval")?,
            ping_timeout: seconds(&args.ping_timeout, "--ping-timeout")?,
        })
    }
}

/// Split `Name: value` into a header, checking both parts.
fn parse_header(header: &str) -> Result<(String, String), String> {
    let Some((name, value)) = header.split_once(':') else {
        return Err(format!("invalid header {header:?}: expected 'Name: value'"));
    };
    let (name, value) = (name.trim(), value.trim());
    if !is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if !is_field_value(value) {
        return Err(format!("invalid value for header {name}: {value:?}"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// An HTTP token (RFC 9110 section 5.6.2): header names and subprotocols.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP field value: no control characters but tab (so no CR or LF).
fn is_field_value(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\t')
}

/// A byte count: digits with an optional binary suffix (`K`, `KiB`, `M`, `MiB`, `G`, `GiB`,
/// any case). `0` means no limit (`None`).
fn parse_size(size: &str) -> Result<Option<usize>, String> {
    let split = size
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(size.len());
    let (digits, suffix) = size.split_at(split);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => {
            return Err(format!(
                "invalid size {size:?} (examples: 65536, 64KiB, 16MiB)"
            ));
        }
    };
    let count: usize = digits
        .parse()
        .map_err(|_| format!("invalid size {size:?} (examples: 65536, 64KiB, 16MiB)"))?;
    let bytes = count
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {size:?} is too large"))?;
    Ok((bytes > 0).then_some(bytes))
}

/// Seconds, maybe fractional (`0.5`). `0` means never (`None`).
fn parse_seconds(secs: &str) -> Result<Option<Duration>, String> {
    let invalid = || format!("invalid number of seconds {secs:?}");
    let value: f64 = secs.trim().parse().map_err(|_| invalid())?;
    let duration = Duration::try_from_secs_f64(value).map_err(|_| invalid())?;
    Ok((!duration.is_zero()).then_some(duration))
}

/// A listening address needs a host and a port: `127.0.0.1:8765`, `[::1]:8765`,
/// `localhost:0`. The host is resolved when binding.
fn check_addr(addr: &str) -> Result<(), String> {
    let invalid = || format!("invalid address {addr:?}: expected HOST:PORT, e.g. {DEFAULT_ADDR}");
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(Some(65536)));
        assert_eq!(parse_size("64KiB"), Ok(Some(64 << 10)));
        assert_eq!(parse_size("16m"), Ok(Some(16 << 20)));
        assert_eq!(parse_size("1G"), Ok(Some(1 << 30)));
        assert_eq!(parse_size("0"), Ok(None));
        assert!(parse_size("").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("20"), Ok(Some(Duration::from_secs(20))));
        assert_eq!(parse_seconds("0.25"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse_seconds("0"), Ok(None));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization:  Bearer x "),
            Ok(("Authorization".into(), "Bearer x".into()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".into(), String::new()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header(": x").is_err());
        assert!(parse_header("X: a\r\nInjected: b").is_err());
    }

    #[test]
    fn addresses() {
        assert!(check_addr("127.0.0.1:8765").is_ok());
        assert!(check_addr("[::1]:0").is_ok());
        assert!(check_addr("localhost:80").is_ok());
        assert!(check_addr("localhost").is_err());
        assert!(check_addr(":80").is_err());
        assert!(check_addr("host:http").is_err());
    }
}
