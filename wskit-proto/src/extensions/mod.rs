//! Extensions: the `Sec-WebSocket-Extensions` header (RFC 6455 section 9.1) and
//! permessage-deflate (RFC 7692).

mod deflate;
mod inflate;
pub mod permessage_deflate;

pub use permessage_deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};

use crate::error::HandshakeError;

/// One extension from a `Sec-WebSocket-Extensions` header: a name and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, each a name and an optional value (quotes removed).
    pub params: Vec<(String, Option<String>)>,
}

impl Extension {
    /// An extension `name` with `params` (name and optional value each, in order).
    pub fn new(name: impl Into<String>, params: Vec<(String, Option<String>)>) -> Self {
        Self {
            name: name.into(),
            params,
        }
    }
}

/// Parse every `Sec-WebSocket-Extensions` value into extensions, in order
/// (RFC 6455 section 9.1 grammar; quoted-string values allowed, and must be tokens once
/// unquoted).
///
/// # Errors
///
/// [`HandshakeError::InvalidHeader`] on a value that does not follow the grammar.
///
/// Each value is one header field and must hold at least one extension (`1#extension`); empty
/// list elements (`a, , b`) are ignored, as RFC 9110 section 5.6.1 asks of recipients. Optional
/// whitespace (spaces and tabs) is allowed around `,`, `;` and `=`. Names are returned as sent
/// (no case folding).
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Extension>, HandshakeError> {
    let mut extensions = Vec::new();
    for value in values {
        let invalid = || HandshakeError::InvalidHeader {
            header: "Sec-WebSocket-Extensions",
            value: value.to_owned(),
        };
        let before = extensions.len();
        Parser {
            input: value.as_bytes(),
            pos: 0,
        }
        .extension_list(&mut extensions)
        .ok_or_else(invalid)?;
        if extensions.len() == before {
            return Err(invalid());
        }
    }
    Ok(extensions)
}

/// Whether `b` is a `tchar` (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A cursor over one header field value. Every method returns `None` on a syntax error.
struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `1*tchar`
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        // tchars are ASCII.
        Some(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE`, returning the unescaped content.
    fn quoted_string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let mut content = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return String::from_utf8(content).ok();
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self.peek()?;
                    if !(escaped == b'\t'
                        || escaped == b' '
                        || (0x21..=0x7e).contains(&escaped)
                        || escaped >= 0x80)
                    {
                        return None;
                    }
                    content.push(escaped);
                    self.pos += 1;
                }
                b @ (b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => {
                    content.push(b);
                    self.pos += 1;
                }
                _ => return None,
            }
        }
    }

    /// `param = token [ "=" ( token / quoted-string ) ]`; a quoted value must be a token once
    /// unquoted (RFC 6455 section 9.1).
    fn param(&mut self) -> Option<(String, Option<String>)> {
        let name = self.token()?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Some((name, None));
        }
        self.pos += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            let value = self.quoted_string()?;
            if !is_token(&value) {
                return None;
            }
            value
        } else {
            self.token()?
        };
        Some((name, Some(value)))
    }

    /// `extension = token *( OWS ";" OWS param )`
    fn extension(&mut self) -> Option<Extension> {
        let name = self.token()?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            if self.peek() != Some(b';') {
                return Some(Extension { name, params });
            }
            self.pos += 1;
            self.skip_ows();
            params.push(self.param()?);
        }
    }

    /// `#extension`, with empty elements allowed, up to the end of the input.
    fn extension_list(&mut self, out: &mut Vec<Extension>) -> Option<()> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Some(()),
                Some(b',') => self.pos += 1,
                Some(_) => {
                    out.push(self.extension()?);
                    self.skip_ows();
                    match self.peek() {
                        None => return Some(()),
                        Some(b',') => self.pos += 1,
                        Some(_) => return None,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    fn invalid(value: &str) -> HandshakeError {
        HandshakeError::InvalidHeader {
            header: "Sec-WebSocket-Extensions",
            value: value.into(),
        }
    }

    #[test]
    fn parses_names_and_params() {
        assert_eq!(
            parse_extensions(["permessage-deflate"]).unwrap(),
            [ext("permessage-deflate", &[])]
        );
        assert_eq!(
            parse_extensions([
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
            ])
            .unwrap(),
            [ext(
                "permessage-deflate",
                &[
                    ("client_max_window_bits", None),
                    ("server_max_window_bits", Some("10"))
                ]
            )]
        );
    }

    #[test]
    fn several_extensions_and_fields_concatenate() {
        let parsed = parse_extensions([
            "foo, permessage-deflate; server_no_context_takeover",
            "bar;x=1;y , baz",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [
                ext("foo", &[]),
                ext(
                    "permessage-deflate",
                    &[("server_no_context_takeover", None)]
                ),
                ext("bar", &[("x", Some("1")), ("y", None)]),
                ext("baz", &[]),
            ]
        );
        assert_eq!(parse_extensions([]).unwrap(), []);
    }

    #[test]
    fn tolerates_whitespace_and_empty_elements() {
        let parsed = parse_extensions([" \t,a ; b = 1 \t;c\t,, ,d ,"]).unwrap();
        assert_eq!(
            parsed,
            [ext("a", &[("b", Some("1")), ("c", None)]), ext("d", &[])]
        );
    }

    #[test]
    fn unquotes_values() {
        let parsed = parse_extensions([
            r#"permessage-deflate; server_max_window_bits="10"; x="a\bc"; y = "!#$%&'*+-.^_`|~""#,
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [ext(
                "permessage-deflate",
                &[
                    ("server_max_window_bits", Some("10")),
                    ("x", Some("abc")),
                    ("y", Some("!#$%&'*+-.^_`|~")),
                ]
            )]
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for value in [
            "",
            " \t ",
            ",",
            ", ,",
            ";",
            "a;",
            "a; ",
            "a;;b",
            "a b",
            "a=1",
            "a; b=",
            "a; b= ;c",
            "a; =1",
            "a; b=1 2",
            "a; b=\"\"",
            "a; b=\"1 2\"",
            "a; b=\"x,y\"",
            "a; b=\"unterminated",
            "a; b=\"trailing\\",
            "a; b=\"1\"x",
            "a; b=\"\u{e9}\"",
            "a; b=1=2",
            "(a)",
            "a, b;",
            "perm\u{e9}ssage-deflate",
            "a; b=\"\x01\"",
        ] {
            assert_eq!(parse_extensions([value]), Err(invalid(value)), "{value:?}");
        }
        // The error names the field value at fault.
        assert_eq!(parse_extensions(["ok", "bad;"]), Err(invalid("bad;")));
    }
}
