//! `wskit connect URI`: the interactive client of `python -m websockets`.
//!
//! Lines of standard input are read on a thread of their own (reading a terminal blocks) and
//! sent as text messages; messages received are printed as they arrive. At the end of input
//! (or on Ctrl-C) the client closes with 1000; when the server closes, it stops. Either way it
//! prints how the connection closed, and exits 0 for a normal closure (1000 or 1001 both
//! ways) or 1 otherwise.

use std::io::{self, BufRead};
use std::pin::pin;
use std::time::Duration;

use tokio::sync::mpsc;
use wskit::{Connection, Message};

use crate::Exit;
use crate::config::ConnectConfig;
use crate::terminal::{Terminal, eprint_line, format_close};

/// How long to wait for the closing handshake after a broken pipe or a second Ctrl-C, before
/// giving up: the user wants out.
const QUICK_CLOSE: Duration = Duration::from_secs(2);

/// What the standard input thread reports.
#[derive(Debug)]
enum Input {
    /// A line, without its line ending.
    Line(String),
    /// The end of the input.
    Eof,
    /// Reading failed.
    Error(io::Error),
}

/// Why the main loop stopped.
enum Stop {
    /// The input ended: linger, then close.
    Eof,
    /// The user pressed Ctrl-C, or reading the input failed: close now.
    Close,
    /// The connection is closed (by the server, or it failed).
    Closed,
    /// Standard output is gone: close quickly and exit quietly.
    BrokenPipe,
}

/// Run the client; returns the exit code.
pub(crate) async fn run(config: &ConnectConfig) -> Exit {
    let terminal = Terminal {
        interactive: config.interactive,
        stderr_is_terminal: config.stderr_is_terminal,
    };
    if config.insecure_no_verify {
        eprint_line(
            "wskit: warning: --insecure-no-verify: the server's certificate is not checked; \
             anyone on the network path can read and change this connection",
        );
    }
    let ws = match builder(config).await {
        Ok(ws) => ws,
        Err(error) => {
            terminal.status(&format!("Failed to connect to {}: {error}.", config.uri));
            return Exit::Error;
        }
    };
    match ws.subprotocol() {
        Some(subprotocol) => terminal.status(&format!(
            "Connected to {} (subprotocol: {subprotocol}).",
            config.uri
        )),
        None => terminal.status(&format!("Connected to {}.", config.uri)),
    }

    let (tx, mut rx) = mpsc::channel(16);
    // A plain thread, not spawn_blocking: the runtime must not wait for it at exit, since it
    // may be blocked reading a terminal.
    std::thread::spawn(move || read_input(&tx, terminal));

    // Completes once: polled by the loop only, which it ends.
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    let stop = loop {
        tokio::select! {
            received = ws.recv() => match received {
                Ok(message) => {
                    if let Err(stop) = print(&terminal, &message) {
                        break stop;
                    }
                }
                Err(error) if error.is_closed() => break Stop::Closed,
                Err(error) => {
                    terminal.status(&format!("Error: {error}."));
                    break Stop::Close;
                }
            },
            input = rx.recv() => match input {
                Some(Input::Line(line)) => {
                    if let Err(error) = ws.send(line).await {
                        if !error.is_closed() {
                            terminal.status(&format!("Error: {error}."));
                        }
                        break Stop::Closed;
                    }
                }
                Some(Input::Eof) | None => break Stop::Eof,
                Some(Input::Error(error)) => {
                    terminal.status(&format!("Cannot read standard input: {error}."));
                    break Stop::Close;
                }
            },
            _ = &mut ctrl_c => break Stop::Close,
        }
    };

    let mut quiet = false;
    match stop {
        Stop::Eof => {
            if let Err(stop) = linger(&ws, &terminal, config.linger).await {
                quiet = matches!(stop, Stop::BrokenPipe);
            }
        }
        Stop::BrokenPipe => quiet = true,
        Stop::Close | Stop::Closed => {}
    }
    if quiet {
        // Nobody reads the output any more: close politely but briefly, and say nothing.
        let _ = tokio::time::timeout(QUICK_CLOSE, ws.close(1000, "")).await;
        return Exit::Ok;
    }

    // Close (a no-op if the server already did), and print what arrived meanwhile.
    let closing = async {
        let _ = ws.close(1000, "").await;
        while let Ok(message) = ws.recv().await {
            if print(&terminal, &message).is_err() {
                break;
            }
        }
    };
    let closed = tokio::select! {
        () = closing => Some(ws.wait_closed().await),
        _ = tokio::signal::ctrl_c() => {
            // Ctrl-C (again) while closing: stop waiting for the server, but briefly.
            tokio::time::timeout(QUICK_CLOSE, ws.wait_closed()).await.ok()
        }
    };
    let Some(closed) = closed else {
        terminal.status("Interrupted before the connection closed.");
        return Exit::Error;
    };
    terminal.status(&format!(
        "Connection closed: {}.",
        format_close(closed.code(), closed.reason())
    ));
    if closed.is_ok() {
        Exit::Ok
    } else {
        Exit::Error
    }
}

/// The connection builder, with the options of the command line.
fn builder(config: &ConnectConfig) -> wskit::Connect {
    let mut connect = wskit::connect(config.uri.as_str())
        .max_size(config.max_size)
        .subprotocols(&config.subprotocols);
    for (name, value) in &config.headers {
        connect = connect.header(name, value);
    }
    if let Some(origin) = &config.origin {
        connect = connect.origin(origin);
    }
    if !config.compression {
        connect = connect.no_compression();
    }
    for path in &config.ca_files {
        connect = connect.ca_file(path);
    }
    if config.insecure_no_verify {
        connect = connect.danger_accept_invalid_certs();
    }
    if let Some(proxy) = &config.proxy {
        connect = connect.proxy(proxy);
    }
    if config.no_proxy {
        connect = connect.no_proxy();
    }
    connect
}

/// Print a received message; a broken pipe stops the client.
fn print(terminal: &Terminal, message: &Message) -> Result<(), Stop> {
    match terminal.message(message) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(Stop::BrokenPipe),
        Err(error) => {
            eprint_line(&format!("wskit: cannot write to standard output: {error}"));
            Err(Stop::BrokenPipe)
        }
    }
}

/// After the end of input, keep printing messages until none arrived for `linger` (zero: close
/// at once, as `python -m websockets`), or the connection closed.
async fn linger(ws: &Connection, terminal: &Terminal, linger: Duration) -> Result<(), Stop> {
    if linger.is_zero() {
        return Ok(());
    }
    while let Ok(Ok(message)) = tokio::time::timeout(linger, ws.recv()).await {
        print(terminal, &message)?;
    }
    Ok(())
}

/// Read lines from standard input until its end, showing the prompt before each when
/// interactive. Stops when the client no longer listens.
fn read_input(tx: &mpsc::Sender<Input>, terminal: Terminal) {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        terminal.prompt();
        line.clear();
        let input = match stdin.read_until(b'\n', &mut line) {
            Ok(0) => Input::Eof,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Input::Line(String::from_utf8_lossy(&line).into_owned())
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Input::Error(error),
        };
        let last = !matches!(input, Input::Line(_));
        if tx.blocking_send(input).is_err() || last {
            return;
        }
    }
}
