//! `wskit`: WebSocket from the command line, built on the [wskit] library.
//!
//! ```text
//! wskit connect ws://localhost:8765      # interactive client, like `python -m websockets`
//! wskit serve echo                       # echo server on 127.0.0.1:8765
//! wskit serve broadcast 0.0.0.0:9000     # every message goes to every client
//! wskit --help | wskit connect --help | wskit serve --help
//! ```
//!
//! `wskit connect URI` sends each line of standard input as a text message and prints each
//! message received on standard output: text as `< TEXT` (control characters escaped, e.g.
//! `\n`, `\x1b`), binary as `< (binary) N bytes` followed by a line of hex. At the end of input
//! (Ctrl-D) it closes with 1000: at once at a terminal, or once no message arrived for a second
//! when the input is piped (`--linger SECS` sets that wait). When the server closes, it stops.
//! Status lines (`Connected to URI.`, `Connection closed: 1000 (OK).`) and errors go to
//! standard error. When standard input and output are terminals it shows a `> ` prompt and
//! prints messages above the typed line.
//!
//! `wskit serve echo|broadcast [ADDR]` serves until SIGTERM or Ctrl-C, then closes every
//! connection with 1001 and exits.
//!
//! # Exit codes
//!
//! - 0: success: the connection closed normally (1000 or 1001 both ways), a server shut down
//!   on a signal, help or version printed, or standard output was closed (a broken pipe);
//! - 1: an error: could not connect, listen, or load the TLS files, or the connection closed
//!   abnormally (another close code, or no closing handshake);
//! - 2: a usage error: bad command line arguments.
//!
//! # Layout
//!
//! As in ripgrep, the raw flags and the resolved settings are separate steps: [`args`] parses
//! the command line into strings, [`config`] turns them into checked settings (exit code 2 for
//! anything wrong), [`connect`] and [`serve`] run the commands, and [`terminal`] prints.
//!
//! [wskit]: https://docs.rs/wskit

#![forbid(unsafe_code)]

mod args;
mod config;
mod connect;
mod serve;
mod terminal;

use std::process::ExitCode;

use crate::args::{Topic, UsageError};
use crate::config::{Command, Config};
use crate::terminal::{eprint_line, print_stdout};

/// The exit codes, as documented in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: success, or a normal closure.
    Ok = 0,
    /// 1: a connection or server error, or an abnormal closure.
    Error = 1,
    /// 2: bad command line arguments.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit as u8)
    }
}

fn main() -> ExitCode {
    let config = match args::parse(std::env::args_os().skip(1)).and_then(Config::resolve) {
        Ok(config) => config,
        Err(error) => {
            usage_error(&error);
            return Exit::Usage.into();
        }
    };
    let exit = match &config.command {
        Command::Help(topic) => print(help(*topic)),
        Command::Version => print(&format!("wskit {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Connect(connect) => {
            init_logging(config.verbose);
            block_on(connect::run(connect))
        }
        Command::Serve(serve) => {
            init_logging(config.verbose);
            block_on(serve::run(serve))
        }
        Command::Completions(shell) => {
            let mut script = Vec::new();
            args::completions(*shell, &mut script);
            print(&String::from_utf8_lossy(&script))
        }
    };
    exit.into()
}

/// Run `future` to completion on a single-threaded runtime: one connection, or a server for
/// a handful of clients, needs no more.
fn block_on(future: impl Future<Output = Exit>) -> Exit {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprint_line(&format!("wskit: cannot start the async runtime: {error}"));
            Exit::Error
        }
    }
}

/// Print help or the version on standard output.
fn print(text: &str) -> Exit {
    match print_stdout(text) {
        Ok(()) => Exit::Ok,
        Err(error) => {
            eprint_line(&format!("wskit: cannot write to standard output: {error}"));
            Exit::Error
        }
    }
}

/// Report a bad command line on standard error, with the usage of the command.
fn usage_error(error: &UsageError) {
    eprint_line(&format!(
        "wskit: error: {error}\n\n{}\n\nFor more information, try '{} --help'.",
        usage(error.topic),
        error.topic.command()
    ));
}

/// Logs on standard error: warnings by default (or `RUST_LOG`), wskit's debug logs with `-v`,
/// everything with `-vv`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("warn,wskit=debug,wskit_cli=debug,wskit_proto=debug"),
        _ => EnvFilter::new("debug,wskit=trace,wskit_cli=trace,wskit_proto=trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The usage line of a topic, shown with errors.
fn usage(topic: Topic) -> &'static str {
    match topic {
        Topic::Main => {
            "Usage: wskit [-v] <COMMAND> [OPTIONS] [ARGS]\n\nCommands: connect, serve, completions, help"
        }
        Topic::Connect => "Usage: wskit connect [OPTIONS] URI",
        Topic::Serve => "Usage: wskit serve [OPTIONS] echo|broadcast [ADDR]",
        Topic::Completions => "Usage: wskit completions SHELL",
    }
}

/// The help page of a topic.
fn help(topic: Topic) -> &'static str {
    match topic {
        Topic::Main => MAIN_HELP,
        Topic::Connect => CONNECT_HELP,
        Topic::Serve => SERVE_HELP,
        Topic::Completions => COMPLETIONS_HELP,
    }
}

pub(crate) const MAIN_HELP: &str = r#"wskit: WebSocket from the command line.

Usage: wskit [-v] <COMMAND> [OPTIONS] [ARGS]

Commands:
  connect URI            An interactive client, like `python -m websockets URI`:
                         sends lines of standard input, prints messages received
  serve echo [ADDR]      A server that sends each message back
  serve broadcast [ADDR] A server that sends each message to every client
                         (ADDR: default 127.0.0.1:8765)
  completions SHELL      Print a completion script for bash, zsh, fish, elvish
                         or powershell
  help [COMMAND]         Print this help, or the help of a command

Options:
  -v, --verbose  Debug logs on standard error (-vv: more); default: warnings,
                 or as RUST_LOG says
  -h, --help     Print help (also 'wskit connect --help', 'wskit serve --help')
  -V, --version  Print the version

Exit codes:
  0  success: the connection closed normally (1000 or 1001 both ways), or the
     server stopped on SIGTERM or Ctrl-C
  1  error: could not connect, listen or load TLS files, or the connection
     closed abnormally (another close code, or no closing handshake)
  2  usage error: bad command line arguments

Examples:
  wskit connect ws://localhost:8765
  wskit connect wss://example.com/chat -H 'Authorization: Bearer TOKEN'
  echo '{"op": "ping"}' | wskit connect ws://localhost:8765
  wskit serve echo
  wskit serve broadcast 0.0.0.0:9000 --tls-cert cert.pem --tls-key key.pem
"#;

pub(crate) const CONNECT_HELP: &str = r#"wskit connect: an interactive client, like `python -m websockets URI`.

Usage: wskit connect [OPTIONS] URI

Sends each line of standard input as a text message (without its line
ending), and prints each message received on standard output:
  < TEXT              text, with control characters escaped (\n, \t, \x1b...)
  < (binary) N bytes  binary, then (unless empty) a line of its bytes in hex
At the end of standard input (Ctrl-D) or on Ctrl-C, closes the connection
with 1000 (OK); stops when the server closes it. Status lines ('Connected to
URI.', 'Connection closed: 1000 (OK).') and errors go to standard error.
When standard input and output are terminals, shows a '> ' prompt and prints
messages above the line being typed.

Arguments:
  URI  ws://HOST[:PORT][/PATH][?QUERY] or wss://...

Options:
  -H, --header 'NAME: VALUE'  Add a header to the handshake (repeatable)
      --subprotocol NAME      Offer a subprotocol (repeatable, best first)
      --origin URL            Send this Origin header
      --no-compression        Do not offer permessage-deflate compression
      --max-size BYTES        The largest message accepted: 65536, 64KiB,
                              16MiB...; 0 for no limit [default: 1MiB]
      --linger SECS           At the end of standard input, keep printing
                              messages until none arrived for SECS seconds,
                              then close [default: 0 at a terminal, 1 when
                              standard input is a pipe or a file]
      --ca-file PATH          wss://: also trust the CA certificates in this
                              PEM file, or a self-signed server certificate
                              (repeatable)
      --insecure-no-verify    wss://: DANGEROUS: do not verify the server's
                              certificate; anyone on the network path can
                              then read and change the connection
      --proxy URL             Go through this proxy:
                              http://[USER:PASS@]HOST[:PORT] (HTTP CONNECT),
                              socks5://... or socks5h://... (the proxy
                              resolves names) [default: from http_proxy,
                              https_proxy, all_proxy, no_proxy]
      --no-proxy              Connect straight, whatever the environment says
  -v, --verbose               Debug logs on standard error (-vv: more)
  -h, --help                  Print this help

Exit codes:
  0  the connection closed normally (1000 or 1001 both ways), or standard
     output was closed
  1  could not connect, or the connection closed abnormally (another close
     code, or no closing handshake)
  2  usage error: bad command line arguments

Examples:
  wskit connect ws://localhost:8765
  printf 'hello\nworld\n' | wskit connect ws://localhost:8765 --linger 0.5
  wskit connect wss://localhost:8443 --ca-file cert.pem
"#;

pub(crate) const SERVE_HELP: &str = r#"wskit serve: an echo server, or a chat-style broadcast server.

Usage: wskit serve [OPTIONS] echo|broadcast [ADDR]

Servers:
  echo       sends each message back to its sender
  broadcast  sends each message to every connected client, the sender
             included; slow clients are skipped rather than waited for

Prints 'listening on ws://ADDR' (wss:// with TLS) on standard error and
serves until SIGTERM or Ctrl-C; then closes every connection with 1001
(going away) and exits.

Arguments:
  ADDR  HOST:PORT to listen on [default: 127.0.0.1:8765]; a name is served
        on all its addresses, and port 0 picks a free port

Options:
      --tls-cert PEM        Serve wss:// with this certificate chain (PEM,
                            the server's certificate first); needs --tls-key
      --tls-key PEM         The private key (PEM: PKCS#8, PKCS#1 or SEC1)
      --max-size BYTES      The largest message accepted: 65536, 64KiB,
                            16MiB...; 0 for no limit [default: 1MiB]
      --no-compression      Do not accept permessage-deflate compression
      --ping-interval SECS  Ping each client every SECS seconds; 0: never
                            [default: 20]
      --ping-timeout SECS   Close (1011) a client whose pong takes longer
                            than SECS seconds; 0: wait forever [default: 20]
  -v, --verbose             Debug logs on standard error (-vv: more)
  -h, --help                Print this help

Exit codes:
  0  the server stopped on SIGTERM or Ctrl-C
  1  could not listen, or could not load the TLS certificate or key
  2  usage error: bad command line arguments

Examples:
  wskit serve echo
  wskit serve broadcast 0.0.0.0:9000
  wskit serve echo localhost:8443 --tls-cert cert.pem --tls-key key.pem
"#;

pub(crate) const COMPLETIONS_HELP: &str = r#"wskit completions: a shell completion script for wskit.

Usage: wskit completions SHELL

Arguments:
  SHELL  bash, zsh, fish, elvish or powershell

Exit codes:
  0  the script was printed
  2  usage error: an unknown shell

Examples:
  wskit completions bash > ~/.local/share/bash-completion/completions/wskit
  wskit completions zsh > ~/.zfunc/_wskit
  wskit completions fish > ~/.config/fish/completions/wskit.fish
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_pages_fit_in_80_columns() {
        for page in [MAIN_HELP, CONNECT_HELP, SERVE_HELP, COMPLETIONS_HELP] {
            for line in page.lines() {
                assert!(line.chars().count() <= 80, "{line}");
            }
        }
    }
}
