//! User-given text (names, keys, key ids) in quotes inside error messages.
//!
//! It reads as `{:?}` does for the text these messages show (quotes,
//! backslashes and control characters escaped), without `Debug`'s Unicode
//! tables and escaping machinery, which cost kilobytes in the WebAssembly
//! module for nothing a message needs.

use std::fmt::{self, Display, Formatter, Write};

/// `text` in double quotes, escaped: `Quoted("a\"b")` shows `"a\"b"`.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

/// A character in single quotes, escaped: `QuotedChar(' ')` shows `' '`.
#[derive(Debug, Clone, Copy)]
pub struct QuotedChar(pub char);

fn escaped(f: &mut Formatter<'_>, c: char, quote: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\0' => f.write_str("\\0"),
        c if c == quote => {
            f.write_char('\\')?;
            f.write_char(c)
        }
        c if c.is_ascii_control() => write!(f, "\\u{{{:x}}}", c as u32),
        c => f.write_char(c),
    }
}

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            escaped(f, c, '"')?;
        }
        f.write_char('"')
    }
}

impl Display for QuotedChar {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        escaped(f, self.0, '\'')?;
        f.write_char('\'')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_debug_does_for_ascii_and_controls() {
        for text in [
            "plain",
            "a\"b",
            "back\\slash",
            "nl\ncr\rtab\t",
            "nul\0",
            "esc\u{1b}del\u{7f}",
            "é ü",
        ] {
            assert_eq!(Quoted(text).to_string(), format!("{text:?}"), "{text:?}");
        }
        for c in [' ', '\'', '"', '|', '\n', '\u{1}', 'é'] {
            assert_eq!(QuotedChar(c).to_string(), format!("{c:?}"), "{c:?}");
        }
    }
}
