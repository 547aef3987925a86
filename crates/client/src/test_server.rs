//! A scripted UDP responder on loopback, for the client's unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hora_proto::{decide, parse, Effect, PeerState, Rules, TimeReply};
use tokio::net::UdpSocket;

/// What the responder does with each datagram: the datagrams to send back
/// (none to drop it, two to duplicate the answer).
pub type Script = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>> + Send>;

/// A responder and what it has received.
pub struct TestServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl TestServer {
    pub async fn start(mut script: Script) -> TestServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
                log.lock().unwrap().push(buffer[..len].to_vec());
                for reply in script(&buffer[..len]) {
                    socket.send_to(&reply, peer).await.unwrap();
                }
            }
        });
        TestServer { addr, received }
    }

    /// A responder that follows `hora_proto`'s rules for one peer.
    pub async fn protocol() -> TestServer {
        TestServer::start(protocol_script()).await
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

/// A client exchange with `server`, with the seed's 10 s timeout.
pub async fn exchange(server: SocketAddr) -> crate::exchange::Exchange {
    crate::exchange::Exchange::connect(
        "127.0.0.1:0".parse().unwrap(),
        server,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// The protocol for one peer, with a fixed time.
pub fn protocol_script() -> Script {
    let time = TimeReply::render(
        chrono::NaiveDate::from_ymd_opt(2022, 3, 25)
            .and_then(|d| d.and_hms_opt(19, 46, 34))
            .unwrap(),
    );
    let mut logged_in = false;
    let now = std::time::Instant::now();
    Box::new(move |datagram| {
        let state = if logged_in {
            PeerState::LoggedIn
        } else {
            PeerState::NoSession { may_open: true }
        };
        let decision = decide(state, parse(datagram), now, Rules::default());
        logged_in = matches!(decision.effect, Effect::Open { .. } | Effect::Keep { .. });
        decision
            .reply
            .map(|reply| reply.bytes(&time).to_vec())
            .into_iter()
            .collect()
    })
}
