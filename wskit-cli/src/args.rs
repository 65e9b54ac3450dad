//! The command line as given: [`parse`] turns the arguments into [`LowArgs`], raw strings that
//! are not interpreted beyond which option takes a value. [`crate::config`] resolves them into
//! settings (numbers, headers, URIs, defaults), so that each step stays small and testable.
//!
//! The parser is clap's (derive): the usual forms (`--name value`, `--name=value`, `-H value`,
//! `-Hvalue`, `-vv`, options before or after the positional arguments, `--` to end the
//! options), `wskit help COMMAND`, and shell completions from the same definition. The help
//! pages are wskit's own (in `main.rs`), with their exit codes and examples.

use std::ffi::OsString;
use std::fmt;

use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};

/// The arguments as given on the command line.
#[derive(Debug, Default)]
pub(crate) struct LowArgs {
    /// How many times `-v` was given.
    pub(crate) verbose: u8,
    /// What to do.
    pub(crate) mode: Mode,
}

/// What the command line asks for.
#[derive(Debug, Default)]
pub(crate) enum Mode {
    /// Print the help of a topic (`--help`, `help [COMMAND]`).
    Help(Topic),
    /// Print the version.
    Version,
    /// `wskit connect`.
    Connect(ConnectArgs),
    /// `wskit serve`.
    Serve(ServeArgs),
    /// `wskit completions SHELL`: the shell's completion script.
    Completions(clap_complete::Shell),
    /// No command: an error, reported by [`crate::config`].
    #[default]
    Missing,
}

/// A help page, and the usage line shown with errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topic {
    /// The tool as a whole.
    Main,
    /// `wskit connect`.
    Connect,
    /// `wskit serve`.
    Serve,
    /// `wskit completions`.
    Completions,
}

impl Topic {
    /// The command line that names this topic, for messages: `wskit connect`.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::Main => "wskit",
            Self::Connect => "wskit connect",
            Self::Serve => "wskit serve",
            Self::Completions => "wskit completions",
        }
    }
}

/// The arguments of `wskit connect`.
#[derive(Debug, Default)]
pub(crate) struct ConnectArgs {
    /// The positional arguments: the URI, and anything extra (an error).
    pub(crate) positional: Vec<String>,
    /// `-H/--header`, each `Name: value`.
    pub(crate) headers: Vec<String>,
    /// `--subprotocol`, in order.
    pub(crate) subprotocols: Vec<String>,
    /// `--origin`.
    pub(crate) origin: Option<String>,
    /// `--no-compression`.
    pub(crate) no_compression: bool,
    /// `--ca-file`, in order.
    pub(crate) ca_files: Vec<String>,
    /// `--insecure-no-verify`.
    pub(crate) insecure_no_verify: bool,
    /// `--proxy`.
    pub(crate) proxy: Option<String>,
    /// `--no-proxy`.
    pub(crate) no_proxy: bool,
    /// `--max-size`.
    pub(crate) max_size: Option<String>,
    /// `--linger`.
    pub(crate) linger: Option<String>,
}

/// The arguments of `wskit serve`.
#[derive(Debug, Default)]
pub(crate) struct ServeArgs {
    /// The positional arguments: the kind of server, the address, and anything extra.
    pub(crate) positional: Vec<String>,
    /// `--tls-cert`.
    pub(crate) tls_cert: Option<String>,
    /// `--tls-key`.
    pub(crate) tls_key: Option<String>,
    /// `--max-size`.
    pub(crate) max_size: Option<String>,
    /// `--no-compression`.
    pub(crate) no_compression: bool,
    /// `--ping-interval`.
    pub(crate) ping_interval: Option<String>,
    /// `--ping-timeout`.
    pub(crate) ping_timeout: Option<String>,
}

/// A bad command line: the message, and the topic whose usage to show with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError {
    /// What is wrong, without a trailing period.
    pub(crate) message: String,
    /// The command it is about.
    pub(crate) topic: Topic,
}

impl UsageError {
    /// An error about `topic`.
    pub(crate) fn new(topic: Topic, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            topic,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The command line, as clap parses it.
#[derive(Debug, Parser)]
#[command(
    name = "wskit",
    version,
    override_help = crate::MAIN_HELP,
    // `wskit connect -V` prints the version, as before; a repeated option's last value wins.
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    /// Debug logs on standard error (-vv: more).
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// An interactive client, like `python -m websockets URI`.
    #[command(override_help = crate::CONNECT_HELP)]
    Connect(ConnectCli),
    /// An echo or broadcast server.
    #[command(override_help = crate::SERVE_HELP)]
    Serve(ServeCli),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(override_help = crate::COMPLETIONS_HELP)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
struct ConnectCli {
    /// `-v` after the command, counted with the ones before it.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// ws://HOST[:PORT][/PATH][?QUERY] or wss://...
    #[arg(value_name = "URI")]
    uri: Option<String>,
    /// Add a header to the handshake (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Offer a subprotocol (repeatable, best first).
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,
    /// Send this Origin header.
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Do not offer permessage-deflate compression.
    #[arg(long)]
    no_compression: bool,
    /// The largest message accepted.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<String>,
    /// At the end of standard input, keep printing messages for SECS seconds.
    #[arg(long, value_name = "SECS")]
    linger: Option<String>,
    /// wss://: also trust the CA certificates in this PEM file (repeatable).
    #[arg(long = "ca-file", value_name = "PATH")]
    ca_files: Vec<String>,
    /// wss://: DANGEROUS: do not verify the server's certificate.
    #[arg(long)]
    insecure_no_verify: bool,
    /// Go through this proxy (http://, socks5://, socks5h://).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Connect straight, whatever the environment says.
    #[arg(long, conflicts_with = "proxy")]
    no_proxy: bool,
}

#[derive(Debug, Args)]
struct ServeCli {
    /// `-v` after the command, counted with the ones before it.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// echo or broadcast.
    #[arg(value_name = "SERVER")]
    server: Option<String>,
    /// HOST:PORT to listen on.
    #[arg(value_name = "ADDR")]
    addr: Option<String>,
    /// Serve wss:// with this certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<String>,
    /// The private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<String>,
    /// The largest message accepted.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<String>,
    /// Do not accept permessage-deflate compression.
    #[arg(long)]
    no_compression: bool,
    /// Ping each client every SECS seconds.
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<String>,
    /// Close a client whose pong takes longer than SECS seconds.
    #[arg(long, value_name = "SECS")]
    ping_timeout: Option<String>,
}

/// Parse the arguments that follow the program name.
///
/// # Errors
///
/// A [`UsageError`] for an unknown option or command, a missing option value, an argument
/// that is not valid UTF-8, or one too many.
pub(crate) fn parse<I>(args: I) -> Result<LowArgs, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let args: Vec<OsString> = args.into_iter().collect();
    // The command an error is about: the first of them on the line.
    let topic = args
        .iter()
        .find_map(|arg| match arg.to_str() {
            Some("connect") => Some(Topic::Connect),
            Some("serve") => Some(Topic::Serve),
            Some("completions") => Some(Topic::Completions),
            _ => None,
        })
        .unwrap_or(Topic::Main);
    let argv = std::iter::once(OsString::from("wskit")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            let mode = match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    // The page clap shows is one of wskit's own: which one says the topic.
                    let page = error.render().to_string();
                    Mode::Help(
                        [Topic::Connect, Topic::Serve, Topic::Completions]
                            .into_iter()
                            .find(|topic| page.starts_with(&format!("{}:", topic.command())))
                            .unwrap_or(Topic::Main),
                    )
                }
                ErrorKind::DisplayVersion => Mode::Version,
                _ => return Err(usage_error(&error, topic)),
            };
            return Ok(LowArgs { verbose: 0, mode });
        }
    };
    let mut verbose = cli.verbose;
    let mode = match cli.command {
        None => Mode::Missing,
        Some(Cmd::Connect(c)) => {
            verbose = verbose.saturating_add(c.verbose);
            Mode::Connect(ConnectArgs {
                positional: c.uri.into_iter().collect(),
                headers: c.headers,
                subprotocols: c.subprotocols,
                origin: c.origin,
                no_compression: c.no_compression,
                ca_files: c.ca_files,
                insecure_no_verify: c.insecure_no_verify,
                proxy: c.proxy,
                no_proxy: c.no_proxy,
                max_size: c.max_size,
                linger: c.linger,
            })
        }
        Some(Cmd::Serve(s)) => {
            verbose = verbose.saturating_add(s.verbose);
            Mode::Serve(ServeArgs {
                positional: s.server.into_iter().chain(s.addr).collect(),
                tls_cert: s.tls_cert,
                tls_key: s.tls_key,
                max_size: s.max_size,
                no_compression: s.no_compression,
                ping_interval: s.ping_interval,
                ping_timeout: s.ping_timeout,
            })
        }
        Some(Cmd::Completions { shell }) => Mode::Completions(shell),
    };
    Ok(LowArgs { verbose, mode })
}

/// clap's error as wskit reports usage errors, about `topic`.
fn usage_error(error: &clap::Error, topic: Topic) -> UsageError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let message = match error.kind() {
        ErrorKind::InvalidSubcommand => match error.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(name)) => {
                format!("unknown command '{name}' (commands: connect, serve, completions, help)")
            }
            _ => "unknown command".to_owned(),
        },
        _ => {
            // clap's own sentence, without its "error: " and the usage it appends.
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_owned()
        }
    };
    UsageError::new(topic, message)
}

/// Write the completion script for `shell` to `out`.
pub(crate) fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "wskit", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<LowArgs, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connect_options_in_every_form() {
        let low = parse_strs(&[
            "-v",
            "connect",
            "-HX-A: 1",
            "--header",
            "X-B: 2",
            "--subprotocol=chat",
            "ws://h/",
            "--no-compression",
            "--max-size",
            "1KiB",
            "--proxy",
            "socks5h://p:1080",
            "-v",
        ])
        .unwrap();
        assert_eq!(low.verbose, 2);
        let Mode::Connect(args) = low.mode else {
            panic!("{:?}", low.mode)
        };
        assert_eq!(args.positional, ["ws://h/"]);
        assert_eq!(args.headers, ["X-A: 1", "X-B: 2"]);
        assert_eq!(args.subprotocols, ["chat"]);
        assert!(args.no_compression);
        assert_eq!(args.max_size.as_deref(), Some("1KiB"));
        assert_eq!(args.proxy.as_deref(), Some("socks5h://p:1080"));
    }

    #[test]
    fn help_version_and_errors() {
        for (args, topic) in [
            (&["--help"][..], Topic::Main),
            (&["-h"], Topic::Main),
            (&["help"], Topic::Main),
            (&["connect", "--help"], Topic::Connect),
            (&["help", "connect"], Topic::Connect),
            (&["serve", "echo", "-h"], Topic::Serve),
            (&["help", "completions"], Topic::Completions),
        ] {
            let mode = parse_strs(args).unwrap().mode;
            assert!(
                matches!(mode, Mode::Help(t) if t == topic),
                "{args:?}: {mode:?}"
            );
        }
        for args in [&["-V"][..], &["connect", "--version"], &["serve", "-V"]] {
            assert!(
                matches!(parse_strs(args).unwrap().mode, Mode::Version),
                "{args:?}"
            );
        }
        // The last value of a repeated option wins, as before clap.
        let low = parse_strs(&["connect", "ws://x", "--max-size", "1", "--max-size", "2"]).unwrap();
        let Mode::Connect(args) = low.mode else {
            panic!()
        };
        assert_eq!(args.max_size.as_deref(), Some("2"));
        assert!(parse_strs(&["connect", "ws://x", "--proxy", "http://p", "--no-proxy"]).is_err());
        let error = parse_strs(&["--bogus"]).unwrap_err();
        assert!(error.message.contains("'--bogus'"), "{}", error.message);
        let error = parse_strs(&["connect", "ws://x", "--max-size"]).unwrap_err();
        assert_eq!(error.topic, Topic::Connect);
        assert!(error.message.contains("--max-size"), "{}", error.message);
        let error = parse_strs(&["frobnicate"]).unwrap_err();
        assert!(error.message.starts_with("unknown command 'frobnicate'"));
        let low = parse_strs(&["connect", "--", "--literal"]).unwrap();
        let Mode::Connect(args) = low.mode else {
            panic!()
        };
        assert_eq!(args.positional, ["--literal"]);
    }
}
