//! The reply to option `1`, rendered from a wall-clock time it is given.
//!
//! The text changes once a second, so a server renders it once a second
//! ([`TimeReply::is_for`] tells it when) and answers every request in between
//! with the same bytes.

use std::fmt::Write as _;

use chrono::{NaiveDateTime, Timelike};

use crate::wire::{Reply, TIME_FORMAT, TIME_MENU, TIME_PREFIX};

/// The longest time reply: the prefix, a date with a five-digit year, the menu.
const CAPACITY: usize = TIME_PREFIX.len() + 21 + TIME_MENU.len();

/// The complete bytes of the seed's `horaString` for one second of local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeReply {
    text: String,
    second: NaiveDateTime,
}

impl TimeReply {
    /// Renders the reply for `local`, the server's local date and time.
    /// Fractions of a second are dropped, as `strftime("%S")` drops them.
    pub fn render(local: NaiveDateTime) -> Self {
        let second = local.with_nanosecond(0).unwrap_or(local);
        let mut text = String::with_capacity(CAPACITY);
        text.push_str(TIME_PREFIX);
        // Writing into a String cannot fail.
        let _ = write!(text, "{}", second.format(TIME_FORMAT));
        text.push_str(TIME_MENU);
        TimeReply { text, second }
    }

    /// Whether this reply already shows `local` (same second), so the caller
    /// can skip rendering it again.
    pub fn is_for(&self, local: NaiveDateTime) -> bool {
        local.with_nanosecond(0).unwrap_or(local) == self.second
    }

    /// The reply's bytes, ready to send.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl Reply {
    /// The reply's exact bytes; `time` supplies the text of [`Reply::Time`].
    /// (Here, beside [`TimeReply`], so that the wire's strings need nothing
    /// of the clock.)
    ///
    /// Borrowing rather than allocating keeps the server's hot path free of
    /// allocations: every reply but the time is a constant, and the time reply
    /// is rendered once a second by the caller.
    pub fn bytes<'a>(&self, time: &'a TimeReply) -> &'a [u8] {
        self.fixed_bytes().unwrap_or_else(|| time.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(h: u32, m: u32, s: u32, nano: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2022, 3, 25)
            .and_then(|d| d.and_hms_nano_opt(h, m, s, nano))
            .expect("valid test date")
    }

    #[test]
    fn renders_the_seeds_figure_5_reply() {
        let reply = TimeReply::render(at(19, 46, 34, 0));
        let expected = "\nData e hora no servidor: 25/03/2022, 19:46:34\n \n****ESCOLHA UMA OPCAO ABAIXO**** \n1 - Verificar data e hora no servidor \n2 - Encerrar a conexao. \n";
        assert_eq!(reply.as_bytes(), expected.as_bytes());
    }

    #[test]
    fn pads_day_month_and_time_with_zeros() {
        let local = NaiveDate::from_ymd_opt(2026, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("valid test date");
        let text = String::from_utf8(TimeReply::render(local).as_bytes().to_vec()).unwrap();
        assert!(text.contains(": 02/01/2026, 03:04:05\n"), "{text:?}");
    }

    #[test]
    fn drops_fractions_of_a_second() {
        assert_eq!(
            TimeReply::render(at(1, 2, 3, 999_999_999)),
            TimeReply::render(at(1, 2, 3, 0))
        );
    }

    #[test]
    fn is_for_the_same_second_only() {
        let reply = TimeReply::render(at(1, 2, 3, 500));
        assert!(reply.is_for(at(1, 2, 3, 0)));
        assert!(reply.is_for(at(1, 2, 3, 999_999_999)));
        assert!(!reply.is_for(at(1, 2, 4, 0)));
        assert!(!reply.is_for(at(1, 2, 2, 999_999_999)));
    }

    #[test]
    fn fits_its_capacity() {
        let reply = TimeReply::render(at(23, 59, 59, 0));
        assert!(reply.as_bytes().len() <= CAPACITY);
    }
}
