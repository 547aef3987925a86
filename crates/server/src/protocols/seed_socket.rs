//! The seed's socket: the seed's login/menu protocol and protocol v2 as
//! siblings on it. This room only tells their datagrams apart (v2's carry
//! its magic) and hands each protocol its own; deadlines, reloads and the
//! shutdown go to both, v2's sessions told first.

use std::time::Instant;

use hora_proto::outcome::{Outcome, Service};
use hora_proto::v2::is_v2;
use tracing::info;

use crate::engine::{Context, Protocol};
use crate::live::Live;
use crate::outbox::Outbox;
use crate::protocols::seed::{self, Seed};
use crate::protocols::v2::V2;
use crate::sys::Received;

/// The two session protocols of the seed's socket, owned by its loop.
#[derive(Debug)]
pub struct SeedSocket {
    seed: Seed,
    v2: V2,
}

impl SeedSocket {
    /// Both protocols, each with its own table.
    pub fn new(seed: Seed, v2: V2) -> SeedSocket {
        SeedSocket { seed, v2 }
    }
}

impl Protocol for SeedSocket {
    fn service(&self) -> Service {
        Service::Seed
    }

    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        out: &mut Outbox,
    ) -> Option<Outcome> {
        if is_v2(datagram) {
            let waited = seed::waited(ctx, &received);
            return Some(self.v2.datagram(ctx, datagram, &received, waited, out));
        }
        self.seed.datagram(ctx, datagram, received, out)
    }

    fn deferred_after_idle(&self) -> Option<std::time::Duration> {
        self.seed.deferred_after_idle()
    }

    fn deferred(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        self.seed.deferred(ctx, out);
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.seed.next_deadline(), self.v2.next_deadline()) {
            (Some(seed), Some(v2)) => Some(seed.min(v2)),
            (seed, v2) => seed.or(v2),
        }
    }

    fn due(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        self.v2.due(ctx, out);
        self.seed.due(ctx, out);
    }

    fn reconfigure(&mut self, live: &Live) {
        self.seed.reconfigure(live);
        self.v2.reconfigure(live);
    }

    /// Ends every session of both, each told the server is going away:
    /// v2's first, then the seed's.
    fn shut_down(&mut self, ctx: &Context<'_>, out: &mut Outbox) -> bool {
        if !self.seed.closing_began() && !self.v2.closing_began() {
            // Once a worker, both protocols' sessions, before any is told.
            info!(
                worker = ctx.worker,
                sessions = self.seed.open_sessions(),
                v2_sessions = self.v2.open_sessions(),
                "shutting down; notifying open sessions"
            );
        }
        self.v2.shut_down(ctx, out) || self.seed.shut_down(ctx, out)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use hora_proto::sntp::ServerClock;
    use hora_proto::v2::client::{read_server, ServerDatagram};
    use hora_proto::v2::wire::login;
    use hora_proto::v2::Nonce;

    use super::*;
    use crate::clock_state::ClockFeed;
    use crate::config::Config;
    use crate::engine::Clocks;
    use crate::log_budget::LogBudget;
    use crate::stats::{Event, Stats};

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), port))
    }

    fn received(datagram: &[u8], peer: SocketAddr) -> Received {
        Received {
            len: datagram.len(),
            peer,
            kernel_time: None,
            local: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_protocol_gets_its_own_datagrams_and_both_hear_the_shutdown() {
        let live = Live::new(Config::default(), None, 1, std::time::Instant::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let (stats, log) = (
            Stats::default(),
            LogBudget::new(tokio::time::Instant::now()),
        );
        let ctx = Context {
            live: &live,
            stats: stats.worker(0),
            worker: 0,
            log: &log,
            now: Clocks::now(),
        };
        let clock = ClockFeed::fixed(ServerClock::default(), true);
        let mut socket = SeedSocket::new(
            Seed::new(&live, Arc::default()),
            V2::new(&live, Arc::default(), clock),
        );
        let mut out = Outbox::default();
        let seed_login = b"login";
        let outcome = socket.datagram(&ctx, seed_login, received(seed_login, peer(1)), &mut out);
        assert_eq!(outcome, Some(Outcome::Answered));
        let v2_login = login(&Nonce([7; 16]));
        let outcome = socket.datagram(&ctx, &v2_login, received(&v2_login, peer(2)), &mut out);
        assert_eq!(outcome, Some(Outcome::Answered));
        let queued = out.queued();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].0, hora_proto::wire::LOGIN_MENU.as_bytes());
        assert!(matches!(
            read_server(queued[1].0),
            Ok(ServerDatagram::Challenge { .. })
        ));
        let now = stats.snapshot(0);
        assert_eq!(
            (now.event(Event::Login), now.event(Event::V2Challenge)),
            (1, 1)
        );
        // The seed's session is told; v2's challenge kept nothing to tell.
        let mut out = Outbox::default();
        while socket.shut_down(&ctx, &mut out) {}
        let told: Vec<_> = out.queued().into_iter().map(|(_, to)| to).collect();
        assert_eq!(told, [peer(1)]);
        assert_eq!(stats.snapshot(0).event(Event::EndShutdown), 1);
    }
}
