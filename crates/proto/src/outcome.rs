//! What became of each datagram a server received: exactly one [`Outcome`]
//! per datagram, so the counters add up (received = answered + dropped, by
//! reason), as ntp-proto's `ServerStatHandler::register` gives each packet
//! one reason. The server decides the outcome where it decides the answer
//! and counts it in one place.

/// The socket a datagram came in on: the protocol it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The seed's login/menu protocol.
    Seed,
    /// SNTP (RFC 4330).
    Sntp,
    /// RFC 868 Time.
    Time,
    /// RFC 867 Daytime.
    Daytime,
    /// Roughtime (RFC 10049).
    Roughtime,
}

impl Service {
    /// Every service, in the order reports list them.
    pub const ALL: [Service; 5] = [
        Service::Seed,
        Service::Sntp,
        Service::Time,
        Service::Daytime,
        Service::Roughtime,
    ];

    /// Its name in logs and metrics (`protocol="seed"`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Seed => "seed",
            Service::Sntp => "sntp",
            Service::Time => "time",
            Service::Daytime => "daytime",
            Service::Roughtime => "roughtime",
        }
    }
}

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its source is outside the access lists.
    Denied,
    /// Its source is over its rate limit (an SNTP client may still get a
    /// `RATE` kiss-o'-death now and then).
    RateLimited,
    /// It is no request of the protocol: garbage, an NTP packet that is not a
    /// client request, text from a peer without a session.
    Invalid,
    /// It looks like another server's reply, or comes from a port that
    /// answers unasked: answering could start a loop.
    Loop,
    /// A refused login whose notice was over the notices' budget.
    Withheld,
    /// A request from a peer without a session, shed while the server was
    /// behind (see [`crate::overload`]).
    Overloaded,
    /// A request that is not authenticated where only authenticated ones
    /// are answered (`[nts] require`), or an NTS request that can't be
    /// read: either answered would be unauthenticated time.
    Unauthenticated,
}

impl DropReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [DropReason; 7] = [
        DropReason::Denied,
        DropReason::RateLimited,
        DropReason::Invalid,
        DropReason::Loop,
        DropReason::Withheld,
        DropReason::Overloaded,
        DropReason::Unauthenticated,
    ];

    /// Its name in logs and metrics (`reason="denied"`).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Denied => "denied",
            DropReason::RateLimited => "rate_limited",
            DropReason::Invalid => "invalid",
            DropReason::Loop => "loop",
            DropReason::Withheld => "withheld",
            DropReason::Overloaded => "overloaded",
            DropReason::Unauthenticated => "unauthenticated",
        }
    }
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A reply was sent for it.
    Answered,
    /// It got no reply, for this reason.
    Dropped(DropReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_prometheus_safe() {
        let names: Vec<&str> = Service::ALL
            .iter()
            .map(|s| s.name())
            .chain(DropReason::ALL.iter().map(|r| r.name()))
            .collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
