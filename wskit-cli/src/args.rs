//! The command line as given: [`parse`] turns the arguments into [`LowArgs`], raw strings that
//! are not interpreted beyond which option takes a value. [`crate::config`] resolves them into
//! settings (numbers, headers, URIs, defaults), so that each step stays small and testable.
//!
//! The parser is written by hand to keep the dependency tree small. It accepts the usual forms:
//! `--name value`, `--name=value`, `-H value`, `-Hvalue`, grouped short flags (`-vv`), options
//! before or after the positional arguments, and `--` to end the options.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;

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
}

impl Topic {
    /// The command line that names this topic, for messages: `wskit connect`.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::Main => "wskit",
            Self::Connect => "wskit connect",
            Self::Serve => "wskit serve",
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

/// Parse the arguments that follow the program name.
///
/// # Errors
///
/// A [`UsageError`] for an unknown option or command, a missing option value, or an argument
/// that is not valid UTF-8.
pub(crate) fn parse<I>(args: I) -> Result<LowArgs, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let args = args
        .into_iter()
        .map(|arg| {
            arg.into_string().map_err(|arg| {
                UsageError::new(Topic::Main, format!("argument is not valid UTF-8: {arg:?}"))
            })
        })
        .collect::<Result<VecDeque<String>, _>>()?;
    let mut lexer = Lexer::new(args);
    let mut low = LowArgs::default();
    // Global options, up to the command.
    while let Some(arg) = lexer.next(Topic::Main)? {
        match arg {
            Arg::Value(command) => {
                low.mode = match command.as_str() {
                    "connect" => parse_connect(&mut lexer, &mut low.verbose)?,
                    "serve" => parse_serve(&mut lexer, &mut low.verbose)?,
                    "help" => parse_help(&mut lexer)?,
                    other => {
                        return Err(UsageError::new(
                            Topic::Main,
                            format!("unknown command '{other}' (commands: connect, serve, help)"),
                        ));
                    }
                };
                return Ok(low);
            }
            arg => {
                if let Some(mode) = common_option(&mut lexer, &arg, Topic::Main, &mut low.verbose)?
                {
                    return Ok(LowArgs { mode, ..low });
                }
            }
        }
    }
    Ok(low)
}

/// The options every command accepts: `-v` (counted, `None`), and `-h` or `-V`, which end
/// parsing with the mode they ask for (help of `topic`, or the version).
fn common_option(
    lexer: &mut Lexer,
    arg: &Arg,
    topic: Topic,
    verbose: &mut u8,
) -> Result<Option<Mode>, UsageError> {
    let mode = match arg {
        _ if arg.is_verbose() => {
            *verbose = verbose.saturating_add(1);
            None
        }
        Arg::Short('h') => Some(Mode::Help(topic)),
        Arg::Short('V') => Some(Mode::Version),
        _ if arg.is("help") => Some(Mode::Help(topic)),
        _ if arg.is("version") => Some(Mode::Version),
        _ => return Err(lexer.unexpected(arg, topic)),
    };
    lexer.check_no_value(topic)?;
    Ok(mode)
}

/// `wskit help [COMMAND]`.
fn parse_help(lexer: &mut Lexer) -> Result<Mode, UsageError> {
    let mut topic = None;
    while let Some(arg) = lexer.next(Topic::Main)? {
        let Arg::Value(name) = arg else {
            return Err(lexer.unexpected(&arg, Topic::Main));
        };
        if topic.is_some() {
            return Err(UsageError::new(
                Topic::Main,
                format!("unexpected argument '{name}'"),
            ));
        }
        topic = Some(match name.as_str() {
            "connect" => Topic::Connect,
            "serve" => Topic::Serve,
            "help" => Topic::Main,
            other => {
                return Err(UsageError::new(
                    Topic::Main,
                    format!("no help for '{other}' (commands: connect, serve)"),
                ));
            }
        });
    }
    Ok(Mode::Help(topic.unwrap_or(Topic::Main)))
}

/// The arguments after `connect`.
fn parse_connect(lexer: &mut Lexer, verbose: &mut u8) -> Result<Mode, UsageError> {
    const TOPIC: Topic = Topic::Connect;
    let mut args = ConnectArgs::default();
    while let Some(arg) = lexer.next(TOPIC)? {
        match &arg {
            Arg::Value(value) => args.positional.push(value.clone()),
            Arg::Short('H') => args.headers.push(lexer.value(&arg, TOPIC)?),
            _ if arg.is("header") => args.headers.push(lexer.value(&arg, TOPIC)?),
            _ if arg.is("subprotocol") => args.subprotocols.push(lexer.value(&arg, TOPIC)?),
            _ if arg.is("origin") => args.origin = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("ca-file") => args.ca_files.push(lexer.value(&arg, TOPIC)?),
            _ if arg.is("max-size") => args.max_size = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("linger") => args.linger = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("no-compression") => args.no_compression = true,
            _ if arg.is("insecure-no-verify") => args.insecure_no_verify = true,
            _ if arg.is("proxy") => args.proxy = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("no-proxy") => args.no_proxy = true,
            _ => {
                if let Some(mode) = common_option(lexer, &arg, TOPIC, verbose)? {
                    return Ok(mode);
                }
            }
        }
        lexer.check_no_value(TOPIC)?;
    }
    Ok(Mode::Connect(args))
}

/// The arguments after `serve`.
fn parse_serve(lexer: &mut Lexer, verbose: &mut u8) -> Result<Mode, UsageError> {
    const TOPIC: Topic = Topic::Serve;
    let mut args = ServeArgs::default();
    while let Some(arg) = lexer.next(TOPIC)? {
        match &arg {
            Arg::Value(value) => args.positional.push(value.clone()),
            _ if arg.is("tls-cert") => args.tls_cert = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("tls-key") => args.tls_key = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("max-size") => args.max_size = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("ping-interval") => args.ping_interval = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("ping-timeout") => args.ping_timeout = Some(lexer.value(&arg, TOPIC)?),
            _ if arg.is("no-compression") => args.no_compression = true,
            _ => {
                if let Some(mode) = common_option(lexer, &arg, TOPIC, verbose)? {
                    return Ok(mode);
                }
            }
        }
        lexer.check_no_value(TOPIC)?;
    }
    Ok(Mode::Serve(args))
}

// ===== Lexer =====

/// One token of the command line.
#[derive(Debug, PartialEq, Eq)]
enum Arg {
    /// `-x`, alone or in a group (`-vv`).
    Short(char),
    /// `--name`, or `--name=value` (the value is kept by the lexer).
    Long(String),
    /// A positional argument, or anything after `--`.
    Value(String),
}

impl Arg {
    /// Whether this is the long option `--name`.
    fn is(&self, name: &str) -> bool {
        matches!(self, Self::Long(long) if long == name)
    }

    /// Whether this is `-v` or `--verbose`.
    fn is_verbose(&self) -> bool {
        self == &Self::Short('v') || self.is("verbose")
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(c) => write!(f, "-{c}"),
            Self::Long(name) => write!(f, "--{name}"),
            Self::Value(value) => f.write_str(value),
        }
    }
}

/// Splits the arguments into [`Arg`]s; options take their values with [`Lexer::value`].
struct Lexer {
    args: VecDeque<String>,
    /// A group of short flags being read (`-vv`), and the byte offset of the next one.
    shorts: Option<(String, usize)>,
    /// The value of the last long option, from `--name=value`, not yet taken.
    long_value: Option<(String, String)>,
    /// After `--`: everything is positional.
    positional_only: bool,
}

impl Lexer {
    fn new(args: VecDeque<String>) -> Self {
        Self {
            args,
            shorts: None,
            long_value: None,
            positional_only: false,
        }
    }

    /// The next token, or `None` at the end.
    fn next(&mut self, topic: Topic) -> Result<Option<Arg>, UsageError> {
        self.check_no_value(topic)?;
        if let Some((group, at)) = self.shorts.take() {
            if let Some(c) = group[at..].chars().next() {
                let next = at + c.len_utf8();
                if next < group.len() {
                    self.shorts = Some((group, next));
                }
                return Ok(Some(Arg::Short(c)));
            }
        }
        let Some(arg) = self.args.pop_front() else {
            return Ok(None);
        };
        if self.positional_only {
            return Ok(Some(Arg::Value(arg)));
        }
        if arg == "--" {
            self.positional_only = true;
            return self.next(topic);
        }
        if let Some(long) = arg.strip_prefix("--") {
            return Ok(Some(match long.split_once('=') {
                Some((name, value)) => {
                    self.long_value = Some((name.to_owned(), value.to_owned()));
                    Arg::Long(name.to_owned())
                }
                None => Arg::Long(long.to_owned()),
            }));
        }
        if arg.len() > 1 && arg.starts_with('-') {
            self.shorts = Some((arg, 1));
            return self.next(topic);
        }
        Ok(Some(Arg::Value(arg)))
    }

    /// The value of the option `arg` just returned: after `=`, the rest of a short group
    /// (`-Hvalue`), or the next argument.
    fn value(&mut self, arg: &Arg, topic: Topic) -> Result<String, UsageError> {
        if let Some((_, value)) = self.long_value.take() {
            return Ok(value);
        }
        if let Some((group, at)) = self.shorts.take() {
            return Ok(group[at..].to_owned());
        }
        self.args
            .pop_front()
            .ok_or_else(|| UsageError::new(topic, format!("option '{arg}' needs a value")))
    }

    /// Fail if a flag that takes no value was given one (`--no-compression=yes`).
    fn check_no_value(&mut self, topic: Topic) -> Result<(), UsageError> {
        match self.long_value.take() {
            Some((name, _)) => Err(UsageError::new(
                topic,
                format!("option '--{name}' does not take a value"),
            )),
            None => Ok(()),
        }
    }

    /// The error for an argument the command does not accept.
    fn unexpected(&mut self, arg: &Arg, topic: Topic) -> UsageError {
        self.long_value = None;
        let message = match arg {
            Arg::Value(value) => format!("unexpected argument '{value}'"),
            option => format!("unknown option '{option}' for '{}'", topic.command()),
        };
        UsageError::new(topic, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<LowArgs, UsageError> {
        parse(args.iter().map(OsString::from))
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
            "-vv",
            "--no-compression",
            "--max-size",
            "1KiB",
            "--",
            "--literal",
        ])
        .unwrap();
        assert_eq!(low.verbose, 3);
        let Mode::Connect(args) = low.mode else {
            panic!("{:?}", low.mode)
        };
        assert_eq!(args.headers, ["X-A: 1", "X-B: 2"]);
        assert_eq!(args.subprotocols, ["chat"]);
        assert_eq!(args.positional, ["ws://h/", "--literal"]);
        assert!(args.no_compression);
        assert_eq!(args.max_size.as_deref(), Some("1KiB"));
    }

    #[test]
    fn help_and_version_anywhere() {
        let topic = |args: &[&str]| match parse_strs(args).unwrap().mode {
            Mode::Help(topic) => Some(topic),
            _ => None,
        };
        assert_eq!(topic(&["--help"]), Some(Topic::Main));
        assert_eq!(topic(&["-h"]), Some(Topic::Main));
        assert_eq!(topic(&["connect", "ws://x", "-h"]), Some(Topic::Connect));
        assert_eq!(topic(&["serve", "--help"]), Some(Topic::Serve));
        assert_eq!(topic(&["help", "serve"]), Some(Topic::Serve));
        assert_eq!(topic(&["help"]), Some(Topic::Main));
        assert!(matches!(parse_strs(&["-V"]).unwrap().mode, Mode::Version));
        assert!(matches!(
            parse_strs(&["serve", "--version"]).unwrap().mode,
            Mode::Version
        ));
    }

    #[test]
    fn usage_errors() {
        let error = |args: &[&str]| parse_strs(args).unwrap_err();
        assert_eq!(
            error(&["--bogus"]).message,
            "unknown option '--bogus' for 'wskit'"
        );
        assert_eq!(error(&["frobnicate"]).topic, Topic::Main);
        let e = error(&["connect", "ws://x", "--max-size"]);
        assert_eq!(e.message, "option '--max-size' needs a value");
        assert_eq!(e.topic, Topic::Connect);
        assert_eq!(
            error(&["serve", "echo", "--no-compression=1"]).message,
            "option '--no-compression' does not take a value"
        );
        assert_eq!(
            error(&["serve", "-x"]).message,
            "unknown option '-x' for 'wskit serve'"
        );
        assert!(matches!(parse_strs(&[]).unwrap().mode, Mode::Missing));
    }
}
