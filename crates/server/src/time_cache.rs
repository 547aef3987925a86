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
            unix_second: unix_second(),
            reply: TimeReply::render(chrono::Local::now().naive_local()),
        }
    }

    /// The reply for the current second of the host's local time.
    pub fn current(&mut self) -> &TimeReply {
        let second = unix_second();
        if second != self.unix_second {
            self.unix_second = second;
            self.reply = TimeReply::render(chrono::Local::now().naive_local());
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
fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hora_proto::ServerMessage;

    #[test]
    fn serves_the_local_time_within_a_second() {
        let mut cache = TimeCache::new();
        let before = chrono::Local::now().naive_local();
        let reply = cache.current().clone();
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
}
