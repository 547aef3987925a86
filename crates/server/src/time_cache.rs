//! The time reply, rendered at most once per second of wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

use hora_proto::TimeReply;

/// Owns the current [`TimeReply`] and renders a new one when the second
/// changes, so a busy server formats the date once a second, not per request.
#[derive(Debug)]
pub struct TimeCache {
    unix_second: u64,
    reply: TimeReply,
}

impl TimeCache {
    /// A cache holding the reply for now.
    pub fn new() -> Self {
        TimeCache {
            unix_second: unix_second(SystemTime::now()),
            reply: TimeReply::render(chrono::Local::now().naive_local()),
        }
    }

    /// The reply for the second of `now`, the wall clock read a moment ago
    /// (a batch of requests reads it once).
    pub fn at(&mut self, now: SystemTime) -> &TimeReply {
        let second = unix_second(now);
        if second != self.unix_second {
            self.unix_second = second;
            self.reply =
                TimeReply::render(chrono::DateTime::<chrono::Local>::from(now).naive_local());
        }
        &self.reply
    }
}

impl Default for TimeCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the Unix epoch; a clock set before 1970 reads as 0.
fn unix_second(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hora_proto::ServerMessage;

    #[test]
    fn serves_the_local_time_within_a_second() {
        let mut cache = TimeCache::new();
        let before = chrono::Local::now().naive_local();
        let reply = cache.at(SystemTime::now()).clone();
        let after = chrono::Local::now().naive_local();
        let ServerMessage::Time {
            server_time: Some(served),
            ..
        } = ServerMessage::read(reply.as_bytes())
        else {
            panic!("not a time reply");
        };
        assert!(served <= after, "{served} after {after}");
        assert!(
            before - served < chrono::TimeDelta::seconds(2),
            "{served} vs {before}"
        );
    }

    #[test]
    fn renders_the_second_it_is_given_once() {
        let mut cache = TimeCache::new();
        let served = |reply: &TimeReply| match ServerMessage::read(reply.as_bytes()) {
            ServerMessage::Time {
                server_time: Some(served),
                ..
            } => served,
            other => panic!("not a time reply: {other:?}"),
        };
        let then = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let expected = chrono::DateTime::<chrono::Local>::from(then).naive_local();
        assert_eq!(served(cache.at(then)), expected);
        // Within the same second, the same reply.
        let later = then + std::time::Duration::from_millis(999);
        assert_eq!(served(cache.at(later)), expected);
        let next = then + std::time::Duration::from_secs(1);
        assert_eq!(
            served(cache.at(next)),
            expected + chrono::TimeDelta::seconds(1)
        );
    }
}
