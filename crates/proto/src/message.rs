//! How a client reads what the server sent.
//!
//! The seed's client knows only one rule: a reply containing
//! `Conexao encerrada` ends the session; anything else is a menu to show.
//! hora's client keeps that rule (so it works against the seed's server too)
//! and reads a little more: which ending it was, and the time in a time reply,
//! so that scripts can get the time and an exit status.

use std::borrow::Cow;

use chrono::NaiveDateTime;

use crate::request::Request;
use crate::wire::{
    IDLE_NOTICE, INVALID_OPTION, NO_SESSION, REFUSED, SESSION_CLOSED, SHUTDOWN_NOTICE, TIME_FORMAT,
    TIME_PREFIX,
};

/// Why the server ended (or refused) the session, read from its closing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedReason {
    /// `Conexao encerrada`: the answer to option `2`.
    Logout,
    /// The option sent was not on the menu.
    InvalidOption,
    /// The session idled out on the server.
    IdleTimeout,
    /// The server had no session for this client.
    NoSession,
    /// The server's session limits refused the login.
    Refused,
    /// The server is shutting down.
    Shutdown,
    /// Some other text containing `Conexao encerrada` (another server).
    Other,
}

/// One datagram from the server, as a client understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// A menu to show, waiting for the user's choice.
    Menu(Cow<'a, str>),
    /// A time reply: the text to show, and the server's local time in it
    /// (`None` if the time could not be read).
    Time {
        /// The whole reply, to show as it is.
        text: Cow<'a, str>,
        /// The server's local date and time, if the reply carried a readable one.
        server_time: Option<NaiveDateTime>,
    },
    /// The session is over.
    Closed {
        /// The text to show.
        text: Cow<'a, str>,
        /// Which ending it was.
        reason: ClosedReason,
    },
}

impl<'a> ServerMessage<'a> {
    /// Reads a datagram. Invalid UTF-8 is replaced, never an error: whatever
    /// a server sends, the user gets to see it.
    pub fn read(datagram: &'a [u8]) -> Self {
        let text = String::from_utf8_lossy(datagram);
        if text.contains(SESSION_CLOSED) {
            let reason = closed_reason(&text);
            return ServerMessage::Closed { text, reason };
        }
        if let Some(rest) = text.strip_prefix(TIME_PREFIX) {
            let server_time = rest
                .split('\n')
                .next()
                .and_then(|stamp| NaiveDateTime::parse_from_str(stamp, TIME_FORMAT).ok());
            return ServerMessage::Time { text, server_time };
        }
        ServerMessage::Menu(text)
    }

    /// The text to show the user.
    pub fn text(&self) -> &str {
        match self {
            ServerMessage::Menu(text)
            | ServerMessage::Time { text, .. }
            | ServerMessage::Closed { text, .. } => text,
        }
    }

    /// Whether this message can be the server's answer to what the client
    /// sent (`sent` is the parse of the client's datagram).
    ///
    /// A client that resends a request may get two answers; the second one
    /// then arrives while it waits for the answer to its next request. Every
    /// request has a closing answer; beyond that, `login` is answered with a
    /// menu and `1` with the time, so a late menu while waiting for the time,
    /// or a late time while waiting for the logout, is stale and skipped.
    pub fn answers(&self, sent: Option<Request>) -> bool {
        matches!(
            (self, sent),
            (ServerMessage::Closed { .. }, _)
                | (ServerMessage::Menu(_), Some(Request::Login))
                | (ServerMessage::Time { .. }, Some(Request::Time))
        )
    }
}

/// Which of the known closing texts this is.
fn closed_reason(text: &str) -> ClosedReason {
    match text {
        SESSION_CLOSED => ClosedReason::Logout,
        INVALID_OPTION => ClosedReason::InvalidOption,
        IDLE_NOTICE => ClosedReason::IdleTimeout,
        NO_SESSION => ClosedReason::NoSession,
        REFUSED => ClosedReason::Refused,
        SHUTDOWN_NOTICE => ClosedReason::Shutdown,
        _ => ClosedReason::Other,
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::clock::TimeReply;
    use crate::wire::{Reply, LOGIN_MENU};

    #[test]
    fn reads_every_reply_the_server_sends() {
        let local = NaiveDate::from_ymd_opt(2022, 3, 25)
            .and_then(|d| d.and_hms_opt(19, 46, 39))
            .expect("valid test date");
        let time = TimeReply::render(local);
        let cases = [
            (Reply::Menu, None),
            (Reply::Closed, Some(ClosedReason::Logout)),
            (Reply::InvalidOption, Some(ClosedReason::InvalidOption)),
            (Reply::NoSession, Some(ClosedReason::NoSession)),
            (Reply::IdleNotice, Some(ClosedReason::IdleTimeout)),
            (Reply::Refused, Some(ClosedReason::Refused)),
            (Reply::ShutdownNotice, Some(ClosedReason::Shutdown)),
        ];
        for (reply, expected) in cases {
            let message = ServerMessage::read(reply.bytes(&time));
            match (message, expected) {
                (ServerMessage::Closed { reason, .. }, Some(expected)) => {
                    assert_eq!(reason, expected, "{reply:?}")
                }
                (ServerMessage::Menu(text), None) => assert_eq!(text, LOGIN_MENU),
                (other, _) => panic!("{reply:?} read as {other:?}"),
            }
        }
        match ServerMessage::read(Reply::Time.bytes(&time)) {
            ServerMessage::Time { server_time, text } => {
                assert_eq!(server_time, Some(local));
                assert_eq!(text.as_bytes(), time.as_bytes());
            }
            other => panic!("time reply read as {other:?}"),
        }
    }

    #[test]
    fn unknown_text_with_the_closing_marker_still_closes() {
        let message = ServerMessage::read(b"Tchau. Conexao encerrada!");
        assert!(matches!(
            message,
            ServerMessage::Closed {
                reason: ClosedReason::Other,
                ..
            }
        ));
    }

    #[test]
    fn invalid_utf8_is_shown_lossily() {
        let message = ServerMessage::read(b"ol\xe1\n");
        assert_eq!(message.text(), "ol\u{fffd}\n");
        assert!(matches!(message, ServerMessage::Menu(_)));
    }

    #[test]
    fn a_time_reply_with_an_unreadable_time_is_still_a_time_reply() {
        let message = ServerMessage::read(b"\nData e hora no servidor: ontem\n");
        assert!(matches!(
            message,
            ServerMessage::Time {
                server_time: None,
                ..
            }
        ));
    }

    #[test]
    fn stale_answers_are_told_apart() {
        let menu = ServerMessage::read(LOGIN_MENU.as_bytes());
        let time = ServerMessage::read(b"\nData e hora no servidor: 25/03/2022, 19:46:39\n");
        let closed = ServerMessage::read(b"Conexao encerrada");
        assert!(menu.answers(Some(Request::Login)));
        assert!(!menu.answers(Some(Request::Time)));
        assert!(!menu.answers(Some(Request::Logout)));
        assert!(time.answers(Some(Request::Time)));
        assert!(!time.answers(Some(Request::Logout)));
        assert!(!time.answers(None));
        for sent in [
            Some(Request::Login),
            Some(Request::Time),
            Some(Request::Logout),
            None,
        ] {
            assert!(closed.answers(sent));
        }
    }
}
