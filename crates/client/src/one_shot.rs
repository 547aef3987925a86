//! `hora time`: the server's time for scripts, in one line.
//!
//! Logs in, asks the time once, logs out, and returns the time with the
//! round-trip of the time request. Anything but a time reply is an error
//! with one clear sentence, so a script can rely on the exit status.

use std::time::Duration;

use chrono::NaiveDateTime;
use hora_proto::v2::client::Offset;
use hora_proto::v2::ClockStatus;
use hora_proto::{ClosedReason, ServerMessage};

use crate::exchange::{Exchange, ExchangeError};
use crate::interactive::LOGOUT_WAIT;

/// The server's time, as a script wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTime {
    /// The server's local date and time (the protocol carries no zone).
    pub time: NaiveDateTime,
    /// The time as the server wrote it: `dd/mm/YYYY, HH:MM:SS`.
    pub text: String,
    /// The round trip of the time request.
    pub round_trip: Duration,
    /// Over protocol v2, this clock's offset from the server's and the
    /// network delay, from the answer's timestamps.
    pub offset: Option<Offset>,
    /// The protocol spoken: `v2` or `seed`.
    pub protocol: &'static str,
}

/// Why no time was had.
#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    /// The server did not answer.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The server ended the session instead of answering.
    #[error("the server ended the session: {text}")]
    Closed {
        /// Why, as read from its text.
        reason: ClosedReason,
        /// What it said.
        text: String,
    },
    /// The server answered with something that is not the protocol's.
    #[error("unexpected reply from the server: {0:?}")]
    Unexpected(String),
    /// Protocol v2's answer said the server's clock is not synchronized:
    /// reported as `hora sntp` reports it, never as a time.
    #[error("{server}: {}: no time", hora_proto::sntp::ReplyError::Unsynchronized)]
    Unsynchronized {
        /// The server.
        server: std::net::SocketAddr,
    },
}

/// Logs in, asks the time, logs out.
pub async fn fetch_time(exchange: &Exchange) -> Result<ServerTime, OneShotError> {
    let login = exchange.request(b"login").await?;
    fetch_time_after(exchange, &login).await
}

/// Asks the time and logs out, `login` being the answer to the `login`
/// already sent (by [`Exchange::open`], which tries several addresses).
pub async fn fetch_time_after(
    exchange: &Exchange,
    login: &crate::exchange::Answer,
) -> Result<ServerTime, OneShotError> {
    if let ServerMessage::Closed { text, reason } = login.message() {
        return Err(OneShotError::Closed {
            reason,
            text: text.into_owned(),
        });
    }
    let answer = exchange.request(b"1").await?;
    let unsynchronized = answer
        .offset
        .is_some_and(|offset| offset.status == ClockStatus::Unsynchronized);
    let result = match answer.message() {
        ServerMessage::Time { .. } if unsynchronized => Err(OneShotError::Unsynchronized {
            server: exchange.server(),
        }),
        ServerMessage::Time {
            server_time: Some(time),
            ..
        } => Ok(ServerTime {
            time,
            text: time.format(hora_proto::wire::TIME_FORMAT).to_string(),
            round_trip: answer.round_trip,
            offset: answer.offset,
            protocol: exchange.protocol(),
        }),
        ServerMessage::Closed { text, reason } => {
            return Err(OneShotError::Closed {
                reason,
                text: text.into_owned(),
            })
        }
        other => Err(OneShotError::Unexpected(other.text().to_owned())),
    };
    // Log out politely; the time is had even if this answer is lost.
    let _ = exchange.request_within(b"2", LOGOUT_WAIT).await;
    result
}

impl ServerTime {
    /// One line for scripts: ISO 8601 local time, `2026-11-24T08:19:22`.
    pub fn line(&self) -> String {
        self.time.format("%Y-%m-%dT%H:%M:%S").to_string()
    }

    /// A JSON object with the time, the round trip and the server; over
    /// v2, the offset and delay too (as `hora sntp --json` has them).
    pub fn json(&self, server: std::net::SocketAddr) -> serde_json::Value {
        let mut json = serde_json::json!({
            "server": server.to_string(),
            "protocol": self.protocol,
            "server_time": self.line(),
            "server_time_text": self.text,
            // Milliseconds with microseconds, never float noise (0.090, not
            // 0.09032899999999999).
            "rtt_ms": rounded(self.round_trip.as_secs_f64() * 1000.0, 3),
        });
        if let Some(offset) = self.offset {
            json["offset_s"] = rounded(offset.offset, 6).into();
            json["delay_s"] = rounded(offset.delay, 6).into();
            json["clock"] = offset.status.name().into();
            json["leap"] = offset.leap.into();
        }
        json
    }
}

/// `value` to `decimals` places, so JSON shows no float noise.
pub fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use hora_proto::wire::REFUSED;

    use super::*;
    use crate::test_server::{exchange, TestServer};

    #[tokio::test]
    async fn logs_in_asks_once_and_logs_out() {
        let server = TestServer::protocol().await;
        let time = fetch_time(&exchange(server.addr).await).await.unwrap();
        assert_eq!(time.line(), "2022-03-25T19:46:34");
        assert_eq!(time.text, "25/03/2022, 19:46:34");
        assert_eq!(server.received(), [&b"login"[..], b"1", b"2"]);
        let json = time.json(server.addr);
        assert_eq!(json["server_time"], "2022-03-25T19:46:34");
        assert_eq!(json["server"], server.addr.to_string());
        assert!(json["rtt_ms"].as_f64().unwrap() >= 0.0);
    }

    #[tokio::test]
    async fn a_refused_login_is_an_error() {
        let server = TestServer::start(Box::new(|_| vec![REFUSED.as_bytes().to_vec()])).await;
        let error = fetch_time(&exchange(server.addr).await).await.unwrap_err();
        assert!(matches!(
            error,
            OneShotError::Closed {
                reason: ClosedReason::Refused,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "the server ended the session: Servidor lotado. Conexao encerrada"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_is_had_even_if_the_logout_answer_is_lost() {
        let mut protocol = crate::test_server::protocol_script();
        let server = TestServer::start(Box::new(move |datagram| match datagram {
            b"2" => Vec::new(),
            _ => protocol(datagram),
        }))
        .await;
        assert!(fetch_time(&exchange(server.addr).await).await.is_ok());
    }
}
