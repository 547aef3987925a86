//! The bytes on the wire.
//!
//! The first group of constants is the seed's text, byte for byte (its
//! `strLogado`, `horaString` and the two closing strings). The second group is
//! what hora adds where the seed had no answer at all; every one of them
//! contains [`SESSION_CLOSED`], because that is how the seed's client knows a
//! session is over (`data.decode().find("Conexao encerrada") != -1`), so the
//! seed's own client quits cleanly on each of them.

/// What a client sends to open a session.
pub const LOGIN: &str = "login";

/// The menu the seed's server sends after `login`.
pub const LOGIN_MENU: &str = "\n \n ****ESCOLHA UMA OPCAO ABAIXO**** \n1 - Verificar a hora no servidor \n2 - Encerrar a conexao. \n";

/// The start of the reply to option `1`, before the date and time.
pub const TIME_PREFIX: &str = "\nData e hora no servidor: ";

/// The `strftime` pattern of the date and time in the reply to option `1`.
pub const TIME_FORMAT: &str = "%d/%m/%Y, %H:%M:%S";

/// The menu that follows the date and time in the reply to option `1`.
///
/// It differs from [`LOGIN_MENU`]: no space before the stars, and option 1
/// reads "Verificar data e hora". The seed sends it so; so do we.
pub const TIME_MENU: &str = "\n \n****ESCOLHA UMA OPCAO ABAIXO**** \n1 - Verificar data e hora no servidor \n2 - Encerrar a conexao. \n";

/// The reply to option `2`, and the marker of every reply that ends a session.
pub const SESSION_CLOSED: &str = "Conexao encerrada";

/// The reply to any option other than `1` and `2`.
pub const INVALID_OPTION: &str = "Opcao invalida. Conexao encerrada";

/// The seed reads datagrams with `recvfrom(1024)`; anything longer is invalid.
pub const MAX_DATAGRAM: usize = 1024;

/// hora's notice to a peer whose session idled out. The text is the one the
/// seed's server prints on its own console when its client goes silent.
pub const IDLE_NOTICE: &str = "Conexao encerrada por inatividade do cliente";

/// hora's answer to an option from a peer that has no session (the seed's
/// server would have quit). A client that gets it should log in again.
pub const NO_SESSION: &str = "Sessao inexistente. Conexao encerrada";

/// hora's answer to a `login` that would exceed the server's session limits.
pub const REFUSED: &str = "Servidor lotado. Conexao encerrada";

/// hora's notice to every open session when the daemon shuts down.
pub const SHUTDOWN_NOTICE: &str = "Servidor desligando. Conexao encerrada";

/// Everything the server ever sends in the seed's protocol.
///
/// A reply is data, not bytes, so the state machine can decide it without a
/// clock; [`Reply::bytes`] (in [`crate::clock`]) renders it with the
/// current [`crate::clock::TimeReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// [`LOGIN_MENU`], the answer to `login`.
    Menu,
    /// The date and time followed by [`TIME_MENU`], the answer to `1`.
    Time,
    /// [`SESSION_CLOSED`], the answer to `2`.
    Closed,
    /// [`INVALID_OPTION`], the answer to anything else from a session.
    InvalidOption,
    /// [`NO_SESSION`], the answer to an option from a peer without a session.
    NoSession,
    /// [`IDLE_NOTICE`], sent when a session idles out.
    IdleNotice,
    /// [`REFUSED`], the answer to a `login` over the session limits.
    Refused,
    /// [`SHUTDOWN_NOTICE`], sent to every session when the daemon stops.
    ShutdownNotice,
}

impl Reply {
    /// The reply's bytes when they do not depend on the time: every reply but
    /// [`Reply::Time`]. Drivers that only ever send notices (an idle timer,
    /// shutdown) use this and need no clock.
    pub fn fixed_bytes(&self) -> Option<&'static [u8]> {
        let text = match self {
            Reply::Time => return None,
            Reply::Menu => LOGIN_MENU,
            Reply::Closed => SESSION_CLOSED,
            Reply::InvalidOption => INVALID_OPTION,
            Reply::NoSession => NO_SESSION,
            Reply::IdleNotice => IDLE_NOTICE,
            Reply::Refused => REFUSED,
            Reply::ShutdownNotice => SHUTDOWN_NOTICE,
        };
        Some(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's server, as printed in the report (section 2.2), with the
    /// line breaks the PDF put inside its string literals taken out.
    const SEED_LOGIN_MENU: &str = r"\n \n ****ESCOLHA UMA OPCAO ABAIXO**** \n1 - Verificar a hora no servidor \n2 - Encerrar a conexao. \n";
    const SEED_TIME_HEAD: &str = r"\nData e hora no servidor: ";
    const SEED_TIME_TAIL: &str = r"\n \n****ESCOLHA UMA OPCAO ABAIXO**** \n1 - Verificar data e hora no servidor \n2 - Encerrar a conexao. \n";

    /// Python's `"\n"` escapes, as the seed writes its literals.
    fn python_literal(source: &str) -> String {
        source.replace(r"\n", "\n")
    }

    #[test]
    fn login_menu_is_the_seeds_str_logado() {
        assert_eq!(LOGIN_MENU, python_literal(SEED_LOGIN_MENU));
    }

    #[test]
    fn time_reply_parts_are_the_seeds_hora_string() {
        assert_eq!(TIME_PREFIX, python_literal(SEED_TIME_HEAD));
        assert_eq!(TIME_MENU, python_literal(SEED_TIME_TAIL));
    }

    #[test]
    fn closing_strings_are_the_seeds() {
        assert_eq!(SESSION_CLOSED.as_bytes(), b"Conexao encerrada");
        assert_eq!(
            INVALID_OPTION.as_bytes(),
            b"Opcao invalida. Conexao encerrada"
        );
        assert_eq!(LOGIN.as_bytes(), b"login");
    }

    #[test]
    fn the_two_menus_differ_as_in_the_seed() {
        assert!(LOGIN_MENU.contains(" ****ESCOLHA"));
        assert!(!TIME_MENU.contains(" ****ESCOLHA"));
        assert!(LOGIN_MENU.contains("Verificar a hora"));
        assert!(TIME_MENU.contains("Verificar data e hora"));
    }

    #[test]
    fn every_reply_that_ends_a_session_is_recognised_by_the_seeds_client() {
        for text in [
            SESSION_CLOSED,
            INVALID_OPTION,
            IDLE_NOTICE,
            NO_SESSION,
            REFUSED,
            SHUTDOWN_NOTICE,
        ] {
            assert!(text.contains(SESSION_CLOSED), "{text:?}");
            assert!(text.is_ascii(), "{text:?}");
        }
        assert!(!LOGIN_MENU.contains(SESSION_CLOSED));
        assert!(!TIME_MENU.contains(SESSION_CLOSED));
    }
}
