use super::*;
use crate::nts::cookie::{CookieKey, KEY_LEN, NONCE_LEN};
use proptest::prelude::*;

const UID: [u8; 32] = [0x55; 32];

fn server_keys() -> [CookieKey; 2] {
    [
        CookieKey {
            id: 1,
            key: [1; KEY_LEN],
        },
        CookieKey {
            id: 2,
            key: [2; KEY_LEN],
        },
    ]
}

fn client_keys(algorithm: Algorithm) -> Keys {
    let len = algorithm.key_len();
    Keys::new(algorithm, &vec![0xC2; len], &vec![0x2C; len]).unwrap_or_else(|| unreachable!())
}

fn plain_header() -> [u8; PACKET_LEN] {
    let mut header = [0u8; PACKET_LEN];
    header[0] = 4 << 3 | 3;
    header[40..48].copy_from_slice(&[9, 8, 7, 6, 5, 4, 3, 2]);
    header
}

fn sealed_cookie(keys: &Keys) -> Vec<u8> {
    let mut out = [0u8; MAX_COOKIE_LEN];
    let len = cookie::seal(&server_keys()[1], keys, &[4; NONCE_LEN], &mut out).unwrap_or(0);
    out[..len].to_vec()
}

fn request(algorithm: Algorithm, placeholders: usize) -> (Keys, Vec<u8>) {
    let keys = client_keys(algorithm);
    let nonce = vec![0x11; algorithm.nonce_len()];
    let bytes = write_request(
        &plain_header(),
        &keys,
        &sealed_cookie(&keys),
        placeholders,
        &UID,
        &nonce,
    )
    .unwrap_or_default();
    (keys, bytes)
}

/// What the server does with a datagram: the reply's bytes, or why none.
fn serve(datagram: &[u8]) -> Result<Vec<u8>, String> {
    let Parsed::Nts(request) = read_request(datagram).map_err(|e| e.to_string())? else {
        return Err("plain".into());
    };
    let mut out = [0u8; MAX_PACKET];
    match authenticate(&request, &server_keys()) {
        Ok(authenticated) => {
            let mut header = [0u8; PACKET_LEN];
            sntp::write_reply(
                &request.header,
                &sntp::ServerClock::default(),
                sntp::NtpTimestamp {
                    seconds: 1,
                    fraction: 2,
                },
                sntp::NtpTimestamp {
                    seconds: 1,
                    fraction: 3,
                },
                &mut header,
            );
            let nonce = vec![0x22; authenticated.keys.algorithm.nonce_len()];
            let mut n = 0u8;
            let (len, _) = write_reply(
                &request,
                &authenticated,
                &header,
                &nonce,
                |keys, out| {
                    n += 1;
                    cookie::seal(&server_keys()[1], keys, &[n; NONCE_LEN], out)
                },
                &mut out,
            )
            .ok_or("sealing failed")?;
            Ok(out[..len].to_vec())
        }
        Err(reject) => {
            let len = write_nak(&request, &mut out);
            Err(format!("nak:{reject}:{}", len))
        }
    }
}

#[test]
fn a_request_authenticates_and_its_reply_gives_the_client_fresh_cookies_that_work() {
    for algorithm in Algorithm::PREFERRED {
        for placeholders in [0, 1, 7, 12] {
            let (keys, bytes) = request(algorithm, placeholders);
            let reply = serve(&bytes).unwrap_or_default();
            assert!(
                reply.len() <= bytes.len(),
                "{algorithm:?}: reply {} > request {}",
                reply.len(),
                bytes.len()
            );
            let read = read_reply(&reply, &keys, &UID);
            let Ok(read) = read else {
                panic!("{algorithm:?} {placeholders}: {read:?}")
            };
            assert_eq!(read.header[1], 10, "the time header came through");
            assert_eq!(
                read.cookies.len(),
                (1 + placeholders).min(MAX_COOKIES_PER_REPLY)
            );
            for fresh in &read.cookies {
                assert_eq!(cookie::open(&server_keys(), fresh).as_ref(), Ok(&keys));
            }
        }
    }
}

#[test]
fn a_reply_never_outgrows_its_request_even_with_a_long_client_nonce_and_no_placeholder() {
    let keys = client_keys(Algorithm::AesSivCmac256);
    // A 16-byte nonce leaves room for exactly the one cookie spent; a
    // request whose own fields are smaller than the reply's gets fewer.
    let bytes = write_request(
        &plain_header(),
        &keys,
        &sealed_cookie(&keys),
        0,
        &UID,
        &[3; 16],
    )
    .unwrap_or_default();
    let reply = serve(&bytes).unwrap_or_default();
    assert!(!reply.is_empty() && reply.len() <= bytes.len());
}

#[test]
fn a_tampered_request_is_refused_with_a_nak_and_never_the_time() {
    let (_, bytes) = request(Algorithm::AesSivCmac256, 1);
    // Flip a bit in the header's transmit timestamp, in the identifier, in
    // the placeholder and in the authenticator's tag: all authenticated.
    for at in [41, PACKET_LEN + 10, bytes.len() - 30, bytes.len() - 1] {
        let mut forged = bytes.clone();
        forged[at] ^= 1;
        let answer = serve(&forged);
        assert!(
            matches!(&answer, Err(e) if e.starts_with("nak:") || e.starts_with("malformed")),
            "byte {at}: {answer:?}"
        );
    }
}

#[test]
fn an_unknown_cookie_gets_a_nak_carrying_the_identifier_and_no_time() {
    let keys = client_keys(Algorithm::AesSivCmac256);
    let mut out = [0u8; MAX_COOKIE_LEN];
    let stranger = CookieKey {
        id: 99,
        key: [9; KEY_LEN],
    };
    let len = cookie::seal(&stranger, &keys, &[4; NONCE_LEN], &mut out).unwrap_or(0);
    let bytes =
        write_request(&plain_header(), &keys, &out[..len], 0, &UID, &[1; 16]).unwrap_or_default();
    let Ok(Parsed::Nts(request)) = read_request(&bytes) else {
        panic!("not read")
    };
    assert_eq!(
        authenticate(&request, &server_keys()),
        Err(Reject::Cookie(CookieError::UnknownKey(99)))
    );
    let mut nak = [0u8; MAX_PACKET];
    let len = write_nak(&request, &mut nak);
    assert_eq!(len, PACKET_LEN + 36);
    assert_eq!(&nak[12..16], b"NTSN");
    assert_eq!(nak[1], 0, "stratum 0: a kiss");
    assert_eq!(&nak[16..24], &[0; 8], "no receive time");
    assert_eq!(&nak[32..48], &[0; 16], "no time at all");
    assert_eq!(read_reply(&nak[..len], &keys, &UID), Err(ReplyError::Nak));
}

#[test]
fn malformed_nts_requests_are_errors_not_plain_requests() {
    let (_, bytes) = request(Algorithm::AesSivCmac256, 0);
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0x01, 0x04, 0, 36]);
    trailing.extend_from_slice(&[0; 32]);
    let mut two_cookies = plain_header().to_vec();
    push_field(&mut two_cookies, field::UNIQUE_IDENTIFIER, &UID);
    push_field(&mut two_cookies, field::COOKIE, &[0; 104]);
    let tail = bytes[PACKET_LEN..].to_vec();
    two_cookies.extend_from_slice(&tail[36..]);
    let mut short_uid = plain_header().to_vec();
    push_field(&mut short_uid, field::UNIQUE_IDENTIFIER, &[1; 16]);
    short_uid.extend_from_slice(&tail[36..]);
    let rows: Vec<(&str, Vec<u8>)> = vec![
        (
            "cut inside the first field",
            bytes[..PACKET_LEN + 10].to_vec(),
        ),
        (
            "cut inside the authenticator",
            bytes[..bytes.len() - 4].to_vec(),
        ),
        ("a field after the authenticator", trailing),
        ("two cookies", two_cookies),
        ("a short identifier", short_uid),
        ("no authenticator", bytes[..PACKET_LEN + 36 + 104].to_vec()),
    ];
    for (name, datagram) in rows {
        let read = read_request(&datagram);
        assert!(
            matches!(read, Err(PacketError::Malformed(_)))
                || (name == "no authenticator" && read.is_err()),
            "{name}: {read:?}"
        );
    }
}

#[test]
fn a_plain_request_with_a_legacy_mac_or_unknown_field_stays_plain() {
    let mut with_mac = plain_header().to_vec();
    with_mac.extend_from_slice(&[0; 20]);
    assert!(matches!(read_request(&with_mac), Ok(Parsed::Plain(_))));
    let mut unknown = plain_header().to_vec();
    push_field(&mut unknown, 0x2005, &[0; 12]);
    assert!(matches!(read_request(&unknown), Ok(Parsed::Plain(_))));
    assert!(matches!(
        read_request(&plain_header()),
        Ok(Parsed::Plain(_))
    ));
}

#[test]
fn a_reply_for_another_request_or_with_a_forged_authenticator_is_refused_by_the_client() {
    let (keys, bytes) = request(Algorithm::Aes128GcmSiv, 0);
    let reply = serve(&bytes).unwrap_or_default();
    assert_eq!(
        read_reply(&reply, &keys, &[0x66; 32]).map(|_| ()),
        Err(ReplyError::NotOurs)
    );
    let mut forged = reply.clone();
    forged[44] ^= 1; // the transmit timestamp
    assert_eq!(
        read_reply(&forged, &keys, &UID).map(|_| ()),
        Err(ReplyError::Unauthenticated)
    );
    let other = client_keys(Algorithm::AesSivCmac256);
    assert_eq!(
        read_reply(&reply, &other, &UID).map(|_| ()),
        Err(ReplyError::Unauthenticated)
    );
    // The plain 48 bytes alone: not authenticated time.
    assert_eq!(
        read_reply(&reply[..PACKET_LEN], &keys, &UID).map(|_| ()),
        Err(ReplyError::NotOurs)
    );
}

proptest! {
    /// Whatever follows a header, reading and authenticating it never
    /// panics, and nothing but the real request authenticates.
    #[test]
    fn any_bytes_after_a_header_are_read_without_panic(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut datagram = plain_header().to_vec();
        datagram.extend_from_slice(&tail);
        if let Ok(Parsed::Nts(request)) = read_request(&datagram) {
            prop_assert!(authenticate(&request, &server_keys()).is_err());
        }
    }

    /// Any single flipped bit of a real request makes it fail to
    /// authenticate or to read.
    #[test]
    fn any_flipped_bit_of_a_request_fails(bit in 0usize..(8 * 400)) {
        let (_, bytes) = request(Algorithm::AesSivCmac256, 1);
        let bit = bit % (8 * bytes.len());
        let mut forged = bytes.clone();
        forged[bit / 8] ^= 1 << (bit % 8);
        // The first byte's mode/version bits can make it no request at all.
        prop_assert!(serve(&forged).is_err(), "bit {}", bit);
    }
}

#[test]
fn a_prepared_reply_stamped_then_sealed_authenticates_with_its_stamp_and_a_later_stamp_breaks_it() {
    let (keys, bytes) = request(Algorithm::AesSivCmac256, 0);
    let Ok(Parsed::Nts(request)) = read_request(&bytes) else {
        panic!("not read")
    };
    let authenticated = authenticate(&request, &server_keys()).unwrap_or_else(|e| panic!("{e}"));
    let mut header = [0u8; PACKET_LEN];
    header[0] = 4 << 3 | 4;
    header[1] = 10;
    header[24..32].copy_from_slice(&bytes[40..48]);
    let mut out = [0u8; MAX_PACKET];
    let nonce = [0x33; 16];
    let unsealed = prepare_reply(
        &request,
        &authenticated,
        &header,
        &nonce,
        |k, room| cookie::seal(&server_keys()[1], k, &[8; NONCE_LEN], room),
        &mut out,
    )
    .unwrap_or_else(|| panic!("prepared"));
    // The transmit timestamp, written as the reply leaves, then the seal.
    out[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        seal_reply(&authenticated.keys, &unsealed, &mut out),
        Some(())
    );
    let reply = read_reply(&out[..unsealed.len], &keys, &UID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&reply.header[40..48], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(reply.cookies.len(), unsealed.cookies);
    // Stamped again after sealing: no longer authentic.
    out[47] ^= 1;
    assert_eq!(
        read_reply(&out[..unsealed.len], &keys, &UID).map(|_| ()),
        Err(ReplyError::Unauthenticated)
    );
}
