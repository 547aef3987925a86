//! What a datagram sent to the server means.
//!
//! The seed's server compares the first datagram with `"login"` and reads every
//! later one with `int(data.decode())`. [`parse`] does the same, without the
//! seed's crash on text that is not a number: such text is a [`ParseError`],
//! which the state machine treats as the seed treats any other option.

use crate::wire::{LOGIN, MAX_DATAGRAM};

/// A request the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `login`: open a session (or repeat the menu of the open one).
    Login,
    /// Option `1`: the server's date and time.
    Time,
    /// Option `2`: end the session.
    Logout,
}

/// Why a datagram is not a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Longer than the seed's 1024-byte receive buffer.
    #[error("datagram of {0} bytes is longer than the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    /// `data.decode()` would raise `UnicodeDecodeError`.
    #[error("datagram is not valid UTF-8")]
    NotUtf8,
    /// `int(...)` would raise `ValueError` (this includes the empty datagram).
    #[error("datagram is not a menu option")]
    NotANumber,
    /// A number, but neither 1 nor 2.
    #[error("option is not on the menu")]
    UnknownOption,
}

/// Reads one datagram as the seed's server would.
///
/// - `login` (surrounding whitespace allowed, so `login\n` from `nc` works);
/// - an integer as Python's `int()` reads it: surrounding ASCII whitespace,
///   an optional sign, ASCII digits with single underscores between them, so
///   `1`, ` 1\n`, `+1`, `01` and `0_1` are all option 1;
/// - anything else is an error: empty, `1.0`, `um`, non-UTF-8, or longer than
///   [`MAX_DATAGRAM`] bytes.
///
/// Python also reads non-ASCII decimal digits (`"١"` is 1); hora does not, and
/// treats them as [`ParseError::NotANumber`], which ends a session exactly as
/// an unknown option does.
pub fn parse(datagram: &[u8]) -> Result<Request, ParseError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(ParseError::TooLong(datagram.len()));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| ParseError::NotUtf8)?;
    let text = text.trim_matches(is_python_ascii_whitespace);
    if text == LOGIN {
        return Ok(Request::Login);
    }
    match python_int(text) {
        Some(1) => Ok(Request::Time),
        Some(2) => Ok(Request::Logout),
        Some(_) => Err(ParseError::UnknownOption),
        None => Err(ParseError::NotANumber),
    }
}

/// The ASCII characters Python's `int()` skips around a number. (Not
/// `str.strip()`'s: that also strips `\x1c`-`\x1f`, which `int()` refuses,
/// and the seed's server reads an option with `int()` alone.)
fn is_python_ascii_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Python's `int(text)` for already-stripped ASCII text, saturated: the exact
/// value of a huge number does not matter, only that it is neither 1 nor 2.
fn python_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    let mut previous_was_digit = false;
    for byte in digits.bytes() {
        match byte {
            b'0'..=b'9' => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(i64::from(byte - b'0'));
                previous_was_digit = true;
            }
            // An underscore only between two digits.
            b'_' if previous_was_digit => previous_was_digit = false,
            _ => return None,
        }
    }
    if !previous_was_digit {
        // Empty, a bare sign, or a trailing underscore.
        return None;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_datagrams_as_the_seed_does() {
        use ParseError::*;
        use Request::*;
        let long = vec![b'1'; MAX_DATAGRAM + 1];
        let padded = format!("{:>width$}", "1", width = MAX_DATAGRAM);
        let table: &[(&[u8], Result<Request, ParseError>)] = &[
            (b"login", Ok(Login)),
            (b"login\n", Ok(Login)),
            (b"  login\r\n", Ok(Login)),
            (b"LOGIN", Err(NotANumber)),
            (b"log in", Err(NotANumber)),
            (b"1", Ok(Time)),
            (b"2", Ok(Logout)),
            (b"1\n", Ok(Time)),
            (b"2\r\n", Ok(Logout)),
            (b" \t1 \x0b\x0c", Ok(Time)),
            (b"\x1f2", Err(NotANumber)),
            (b"2\x1c", Err(NotANumber)),
            (b"+1", Ok(Time)),
            (b"01", Ok(Time)),
            (b"0002", Ok(Logout)),
            (b"0_1", Ok(Time)),
            (b"+0_0_2", Ok(Logout)),
            (b"3", Err(UnknownOption)),
            (b"0", Err(UnknownOption)),
            (b"-1", Err(UnknownOption)),
            (b"-0", Err(UnknownOption)),
            (b"12", Err(UnknownOption)),
            (b"1_2", Err(UnknownOption)),
            (b"99999999999999999999999999999", Err(UnknownOption)),
            (b"-99999999999999999999999999999", Err(UnknownOption)),
            (b"", Err(NotANumber)),
            (b"   ", Err(NotANumber)),
            (b"1.0", Err(NotANumber)),
            (b"1 1", Err(NotANumber)),
            (b"um", Err(NotANumber)),
            (b"+", Err(NotANumber)),
            (b"-", Err(NotANumber)),
            (b"+-1", Err(NotANumber)),
            (b"_1", Err(NotANumber)),
            (b"1_", Err(NotANumber)),
            (b"1__0", Err(NotANumber)),
            (b"0x1", Err(NotANumber)),
            (b"1\0", Err(NotANumber)),
            ("\u{a0}1".as_bytes(), Err(NotANumber)),
            ("\u{661}".as_bytes(), Err(NotANumber)),
            (b"\xff", Err(NotUtf8)),
            (b"1\xc3", Err(NotUtf8)),
            (&long, Err(TooLong(MAX_DATAGRAM + 1))),
            (padded.as_bytes(), Ok(Time)),
        ];
        for (datagram, expected) in table {
            assert_eq!(
                parse(datagram),
                *expected,
                "datagram {:?}",
                String::from_utf8_lossy(datagram)
            );
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            ParseError::TooLong(2000).to_string(),
            "datagram of 2000 bytes is longer than the 1024-byte limit"
        );
        assert_eq!(
            ParseError::NotUtf8.to_string(),
            "datagram is not valid UTF-8"
        );
    }
}
