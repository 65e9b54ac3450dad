//! Printing: messages received on standard output, status lines and errors on standard error,
//! with control characters escaped so that a peer cannot drive the terminal.
//!
//! Received text is printed as `< TEXT`; binary as `< (binary) N bytes` and, unless empty, a
//! line with its bytes in hex. When both standard input and output are terminals, the client
//! is interactive, as `python -m websockets`: a `> ` prompt is shown, and messages are printed
//! above the line being typed with the same VT100 sequences as websockets' `cli.py`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use wskit::{CloseCode, Message};

/// Where the client's output goes, and how.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terminal {
    /// Standard input and output are terminals: prompt, and print around the typed line.
    pub(crate) interactive: bool,
    /// Standard error is a terminal: status lines clear the prompt first when interactive.
    pub(crate) stderr_is_terminal: bool,
}

impl Terminal {
    /// Print a received message on standard output.
    ///
    /// # Errors
    ///
    /// The error writing to standard output; [`io::ErrorKind::BrokenPipe`] when the reader
    /// went away (`wskit connect ... | head -1`), which the caller treats as the end.
    pub(crate) fn message(&self, message: &Message) -> io::Result<()> {
        match message {
            Message::Text(text) => self.stdout_line(&format!("< {}", escape(text.as_str()))),
            Message::Binary(data) => {
                self.stdout_line(&format!("< (binary) {} bytes", data.len()))?;
                if data.is_empty() {
                    Ok(())
                } else {
                    self.stdout_line(&hex(data))
                }
            }
        }
    }

    /// Show the prompt, when interactive.
    pub(crate) fn prompt(&self) {
        if self.interactive {
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"> ").and_then(|()| out.flush());
        }
    }

    /// Print a status line (`Connected to ...`, `Connection closed: ...`) or an error on
    /// standard error. When interactive, it replaces the prompt line. Errors writing to
    /// standard error are ignored: there is nowhere left to report them.
    pub(crate) fn status(&self, line: &str) {
        let mut err = io::stderr().lock();
        let _ = if self.interactive && self.stderr_is_terminal {
            // Move to the start of the line and clear the prompt ("print over input").
            write!(err, "\r\x1b[K{line}\n")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Write one line on standard output, above the line being typed when interactive.
    fn stdout_line(&self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.interactive {
            // Save the cursor, add a line, go up, insert a blank line (scrolling the typed
            // line down), print there, restore the cursor and go down: the typed line stays.
            write!(out, "\x1b7\n\x1b[A\x1b[L{line}\n\x1b8\x1b[B")?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()
    }
}

/// Print a line on standard error, ignoring errors (for warnings and fatal errors).
pub(crate) fn eprint_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// Print `text` on standard output, as help pages are. A closed pipe ends it quietly.
///
/// # Errors
///
/// Errors writing, but [`io::ErrorKind::BrokenPipe`].
pub(crate) fn print_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// `Connection closed:`'s argument: `1000 (OK)`, `4000 (private use) bye`, as websockets'
/// `Close.__str__` (the reason escaped).
pub(crate) fn format_close(code: CloseCode, reason: &str) -> String {
    let mut out = format!("{} ({})", code.0, code.name().unwrap_or("unknown"));
    if !reason.is_empty() {
        out.push(' ');
        out.push_str(&escape(reason));
    }
    out
}

/// Escape what a terminal would act on rather than show, as Python's `repr` does: `\n`,
/// `\r`, `\t`, other control characters as `\xNN` (C0, DEL, C1), and the invisible characters
/// that reorder or hide text (bidirectional overrides, zero-width characters, line separators)
/// as `\uNNNN`. Everything else, printable Unicode included, is kept as is. Backslashes are
/// kept too, so that JSON stays readable: the output is for people, not to be parsed back.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let n = u32::from(c);
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else {
                    write!(out, "\\u{n:04x}")
                };
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `c` is escaped by [`escape`].
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'                      // Arabic letter mark
            | '\u{200b}'..='\u{200f}'       // zero-width space, joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}'       // line and paragraph separators, bidi embeddings
            | '\u{2060}'..='\u{2069}'       // word joiner, invisible operators, bidi isolates
            | '\u{feff}' // byte order mark
        )
}

/// The bytes in lowercase hex, separated by spaces: `00 01 ff`.
pub(crate) fn hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for (i, byte) in data.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_unicode() {
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(escape("\x1b[31mred\x07"), "\\x1b[31mred\\x07");
        assert_eq!(escape("\0\x7f\u{85}"), "\\x00\\x7f\\x85");
        assert_eq!(escape("héllo ✓ 日本 🎉"), "héllo ✓ 日本 🎉");
        assert_eq!(escape("abc\u{202e}def"), "abc\\u202edef");
        assert_eq!(escape(r#"{"a":"b\"c"}"#), r#"{"a":"b\"c"}"#);
    }

    #[test]
    fn hex_dump() {
        assert_eq!(hex(b""), "");
        assert_eq!(hex(b"\x00\x01\xffhi"), "00 01 ff 68 69");
    }

    #[test]
    fn close_status() {
        assert_eq!(format_close(CloseCode::NORMAL, ""), "1000 (OK)");
        assert_eq!(
            format_close(CloseCode(4000), "bye\n"),
            "4000 (private use) bye\\n"
        );
        assert_eq!(format_close(CloseCode(2999), ""), "2999 (unknown)");
    }
}
