//! The server's half against the client's: every version answered
//! verifies, and every forgery or fault fails the check it should.

use proptest::prelude::*;

use super::client::{self, VerifyError};
use super::keys::{LongTermKey, OnlineKey};
use super::request::{self, RequestError, MIN_REQUEST};
use super::response::{Responder, Time};
use super::version::Version;
use super::wire::{self, Message, Tag};

const NOW: u64 = 1_796_000_000;

fn keys() -> (LongTermKey, OnlineKey) {
    let long_term = LongTermKey::from_seed(&[7; 32]).expect("a seed");
    let online = long_term
        .delegate(&[9; 32], NOW - 10, NOW + 86_400)
        .expect("a seed");
    (long_term, online)
}

/// Answers `packets` as one batch; the responses in request order.
fn answer(long_term: &LongTermKey, online: &OnlineKey, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let requests: Vec<_> = packets
        .iter()
        .map(|packet| {
            request::parse(packet, long_term.server_hash())
                .expect("a good request")
                .accept()
        })
        .collect();
    let mut responses = vec![Vec::new(); packets.len()];
    let time = Time {
        midpoint: NOW,
        radius: 3,
    };
    Responder::default().answer(online, &requests, time, |index, packet| {
        responses[index] = packet.to_vec();
    });
    responses
}

#[test]
fn every_version_answered_verifies_in_a_mixed_batch() {
    let (long_term, online) = keys();
    let public = long_term.public_key();
    let offers: Vec<Vec<Version>> = Version::supported()
        .map(|version| vec![version])
        .chain([vec![Version::RFC, Version(0x8000_000c)]])
        .collect();
    let packets: Vec<Vec<u8>> = offers
        .iter()
        .enumerate()
        .map(|(i, offer)| client::request(&[i as u8; 32], offer, Some(&public)))
        .collect();
    let responses = answer(&long_term, &online, &packets);
    for ((packet, response), offer) in packets.iter().zip(&responses).zip(&offers) {
        assert!(
            response.len() <= packet.len(),
            "never larger than the request"
        );
        let verified = client::verify(packet, response, &public).expect("verifies");
        assert_eq!(
            verified.version,
            *offer.first().expect("an offer"),
            "version 1 first"
        );
        assert_eq!((verified.midpoint, verified.radius), (NOW, 3));
        assert_eq!((verified.mint, verified.maxt), (NOW - 10, NOW + 86_400));
    }
}

#[test]
fn a_batch_of_one_version_is_one_signature() {
    let (long_term, online) = keys();
    let public = long_term.public_key();
    let packets: Vec<Vec<u8>> = (0..100u8)
        .map(|i| client::request(&[i; 32], &[Version::RFC], None))
        .collect();
    let requests: Vec<_> = packets
        .iter()
        .map(|p| {
            request::parse(p, long_term.server_hash())
                .expect("good")
                .accept()
        })
        .collect();
    let mut responses = vec![Vec::new(); packets.len()];
    let time = Time {
        midpoint: NOW,
        radius: 1,
    };
    let signatures = Responder::default().answer(&online, &requests, time, |i, p| {
        responses[i] = p.to_vec();
    });
    assert_eq!(
        signatures, 2,
        "64 leaves a tree at most: 100 requests, two trees"
    );
    for (packet, response) in packets.iter().zip(&responses) {
        client::verify(packet, response, &public).expect("verifies");
    }
}

#[test]
fn another_key_fails_the_delegation_check() {
    let (long_term, online) = keys();
    let packet = client::request(&[1; 32], &[Version::RFC], None);
    let response = answer(&long_term, &online, std::slice::from_ref(&packet)).remove(0);
    let other = LongTermKey::from_seed(&[8; 32])
        .expect("a seed")
        .public_key();
    assert_eq!(
        client::verify(&packet, &response, &other),
        Err(VerifyError::Delegation)
    );
}

#[test]
fn a_response_to_another_request_fails() {
    let (long_term, online) = keys();
    let public = long_term.public_key();
    let first = client::request(&[1; 32], &[Version::RFC], None);
    let second = client::request(&[2; 32], &[Version::RFC], None);
    let responses = answer(&long_term, &online, &[first.clone(), second.clone()]);
    assert_eq!(
        client::verify(&first, &responses[1], &public),
        Err(VerifyError::Nonce)
    );
    // The same nonce in another request packet: draft 12 on, the leaf is the
    // whole request, so the path does not lead to the root.
    let mut altered = first.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert_eq!(
        client::verify(&altered, &responses[0], &public),
        Err(VerifyError::Merkle)
    );
}

#[test]
fn a_changed_time_fails_the_signature() {
    let (long_term, online) = keys();
    let public = long_term.public_key();
    let packet = client::request(&[1; 32], &[Version::RFC], None);
    let response = answer(&long_term, &online, std::slice::from_ref(&packet)).remove(0);
    let midpoint = NOW.to_le_bytes();
    let at = response
        .windows(8)
        .position(|window| window == midpoint)
        .expect("the midpoint is in the response");
    let mut forged = response.clone();
    forged[at] ^= 1;
    assert_eq!(
        client::verify(&packet, &forged, &public),
        Err(VerifyError::Signature)
    );
}

#[test]
fn the_midpoint_outside_the_delegation_fails() {
    let long_term = LongTermKey::from_seed(&[7; 32]).expect("a seed");
    let online = long_term
        .delegate(&[9; 32], NOW + 10, NOW + 20)
        .expect("a seed");
    let packet = client::request(&[1; 32], &[Version::RFC], None);
    let response = answer(&long_term, &online, std::slice::from_ref(&packet)).remove(0);
    assert_eq!(
        client::verify(&packet, &response, &long_term.public_key()),
        Err(VerifyError::Expired)
    );
}

#[test]
fn bad_requests_are_refused_with_their_reason() {
    let (long_term, _) = keys();
    let server = long_term.server_hash();
    let good = client::request(&[1; 32], &[Version::RFC], None);
    assert!(request::parse(&good, server).is_ok());
    assert_eq!(good.len(), MIN_REQUEST);

    let short = &good[..MIN_REQUEST - 4];
    assert_eq!(
        request::parse(short, server).unwrap_err(),
        RequestError::Undersized
    );
    let other_server = LongTermKey::from_seed(&[8; 32])
        .expect("a seed")
        .public_key();
    let named = client::request(&[1; 32], &[Version::RFC], Some(&other_server));
    assert_eq!(
        request::parse(&named, server).unwrap_err(),
        RequestError::OtherServer
    );
    let old = client::request(
        &[1; 32],
        &[Version(0x8000_0007), Version(0xc000_0001)],
        None,
    );
    assert_eq!(
        request::parse(&old, server).unwrap_err(),
        RequestError::Version
    );
    let unsorted = client::request(&[1; 32], &[Version(0x8000_000c), Version::RFC], None);
    assert_eq!(
        request::parse(&unsorted, server).unwrap_err(),
        RequestError::BadTag(Tag::VER)
    );
    // Google's unframed form: the message alone.
    let unframed = wire::unframe(&good).expect("framed").to_vec();
    let mut unframed_padded = unframed.clone();
    unframed_padded.resize(MIN_REQUEST + 12, 0);
    assert!(matches!(
        request::parse(&unframed_padded, server),
        Err(RequestError::Malformed(_))
    ));
    // TYPE is required by version 1 and draft 14 on, not by draft 12.
    let untyped = request_without_type(&[Version::RFC]);
    assert_eq!(
        request::parse(&untyped, server).unwrap_err(),
        RequestError::BadTag(Tag::TYPE)
    );
    let untyped_12 = request_without_type(&[Version(0x8000_000c)]);
    assert!(request::parse(&untyped_12, server).is_ok());
}

/// A request like the client's but without `TYPE` (drafts before 14 sent none).
fn request_without_type(versions: &[Version]) -> Vec<u8> {
    let offer: Vec<u8> = versions.iter().flat_map(|v| v.0.to_le_bytes()).collect();
    let nonce = [3u8; 32];
    let padding = vec![0u8; MIN_REQUEST - 12 - 24 - offer.len() - 32];
    let mut packet = Vec::new();
    wire::write_frame(&mut packet, MIN_REQUEST - 12);
    wire::write_message(
        &mut packet,
        &[
            (Tag::VER, &offer),
            (Tag::NONC, &nonce),
            (Tag::ZZZZ, &padding),
        ],
    );
    assert_eq!(packet.len(), MIN_REQUEST);
    packet
}

proptest! {
    /// Whatever bytes arrive, parsing ends in a request or a reason, and a
    /// request it accepts is answered with a response no larger.
    #[test]
    fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let (long_term, online) = keys();
        if let Ok(request) = request::parse(&bytes, long_term.server_hash()) {
            let time = Time { midpoint: NOW, radius: 1 };
            Responder::default().answer(&online, &[request.accept()], time, |_, response| {
                assert!(response.len() <= bytes.len());
            });
        }
    }

    /// A good request with one byte of its header changed parses or is
    /// refused, never panics; and if it parses, it still verifies.
    #[test]
    fn a_mutated_request_never_panics(at in 0usize..80, bit in 0u8..8) {
        let (long_term, online) = keys();
        let mut packet = client::request(&[5; 32], &[Version::RFC], None);
        packet[at] ^= 1 << bit;
        if let Ok(request) = request::parse(&packet, long_term.server_hash()) {
            let mut response = Vec::new();
            Responder::default().answer(&online, &[request.accept()], Time { midpoint: NOW, radius: 1 }, |_, r| {
                response = r.to_vec();
            });
            prop_assert!(client::verify(&packet, &response, &long_term.public_key()).is_ok());
        }
    }
}

#[test]
fn the_response_s_tags_are_the_rfc_s() {
    let (long_term, online) = keys();
    let packet = client::request(&[1; 32], &[Version::RFC], None);
    let response = answer(&long_term, &online, &[packet]).remove(0);
    let message = Message::parse(wire::unframe(&response).expect("framed")).expect("parses");
    let tags: Vec<Tag> = message.entries().map(|(tag, _)| tag).collect();
    assert_eq!(
        tags,
        [
            Tag::SIG,
            Tag::NONC,
            Tag::TYPE,
            Tag::PATH,
            Tag::SREP,
            Tag::CERT,
            Tag::INDX
        ]
    );
    assert_eq!(message.get(Tag::TYPE), Some(&1u32.to_le_bytes()[..]));
}

#[test]
fn the_largest_response_is_668_bytes() {
    // A full tree (a path of six hashes), in a draft with the version
    // outside SREP too: PROTOCOL.md's amplification table says 668.
    let (long_term, online) = keys();
    let largest = |version: Version| {
        let packets: Vec<Vec<u8>> = (0..64u8)
            .map(|i| client::request(&[i; 32], &[version], None))
            .collect();
        answer(&long_term, &online, &packets)
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
    };
    assert_eq!(largest(Version(0x8000_000b)), 668);
    assert_eq!(largest(Version::RFC), 656);
}
