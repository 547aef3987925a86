//! NTS Key Establishment records (RFC 8915, section 4): the messages a
//! client and the server exchange over TLS, each a run of records
//! `type (2, top bit: critical) | body length (2) | body`, ending with End
//! of Message. The server reads the client's request with [`read_request`]
//! and answers with [`Response::write`]; the client reads that with
//! [`read_response`]. Neither side trusts a length it was sent: every
//! record is checked against what is left and against [`MAX_MESSAGE`].

use super::aead::Algorithm;

/// The TLS ALPN protocol id of NTS-KE.
pub const ALPN: &[u8] = b"ntske/1";
/// The IANA port of NTS-KE.
pub const DEFAULT_PORT: u16 = 4460;
/// The most bytes of one message either side reads (chrony's limit too);
/// a longer one is a bad request.
pub const MAX_MESSAGE: usize = 16_384;
/// The Next Protocol id of NTPv4: the only one.
pub const NTPV4: u16 = 0;
/// How many cookies a response carries (RFC 8915 recommends 8).
pub const COOKIES_PER_RESPONSE: usize = 8;

const CRITICAL: u16 = 0x8000;

/// The record types of RFC 8915, section 4.1.
mod kind {
    pub const END_OF_MESSAGE: u16 = 0;
    pub const NEXT_PROTOCOL: u16 = 1;
    pub const ERROR: u16 = 2;
    pub const WARNING: u16 = 3;
    pub const AEAD: u16 = 4;
    pub const NEW_COOKIE: u16 = 5;
    pub const SERVER: u16 = 6;
    pub const PORT: u16 = 7;
}

/// The error codes of an Error record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: a critical record the receiver doesn't know.
    UnrecognizedCriticalRecord,
    /// 1: malformed, duplicate or missing records.
    BadRequest,
    /// 2: the server could not do its part.
    InternalServerError,
    /// Any other code.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::UnrecognizedCriticalRecord => 0,
            ErrorCode::BadRequest => 1,
            ErrorCode::InternalServerError => 2,
            ErrorCode::Other(code) => code,
        }
    }

    fn from_code(code: u16) -> ErrorCode {
        match code {
            0 => ErrorCode::UnrecognizedCriticalRecord,
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::InternalServerError,
            other => ErrorCode::Other(other),
        }
    }
}

/// One record, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record<'a> {
    critical: bool,
    kind: u16,
    body: &'a [u8],
}

/// Splits the first record off `bytes`: `Ok(None)` if it isn't all there
/// yet (read more), `Err` if it never will be.
fn split_record(bytes: &[u8]) -> Result<Option<(Record<'_>, &[u8])>, ErrorCode> {
    let [a, b, c, d, rest @ ..] = bytes else {
        return Ok(None);
    };
    let raw = u16::from_be_bytes([*a, *b]);
    let len = usize::from(u16::from_be_bytes([*c, *d]));
    if rest.len() < len {
        return Ok(None);
    }
    let (body, rest) = rest.split_at(len);
    Ok(Some((
        Record {
            critical: raw & CRITICAL != 0,
            kind: raw & !CRITICAL,
            body,
        },
        rest,
    )))
}

/// The u16s of a record body of them; a body of odd length is malformed.
fn u16s(body: &[u8]) -> Result<impl Iterator<Item = u16> + '_, ErrorCode> {
    if body.len() % 2 != 0 {
        return Err(ErrorCode::BadRequest);
    }
    Ok(body
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]])))
}

/// What a client asked for: the protocols and AEADs it offered, in its
/// order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Next Protocol ids offered.
    pub protocols: Vec<u16>,
    /// AEAD ids offered.
    pub algorithms: Vec<u16>,
}

/// How far [`read_request`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<T> {
    /// The message isn't complete yet: read more (unless [`MAX_MESSAGE`]
    /// bytes are in, which makes it [`ErrorCode::BadRequest`]).
    Incomplete,
    /// The whole message.
    Complete(T),
}

/// Reads a client's request from the bytes received so far. An error is
/// what the server answers with (and then closes).
pub fn read_request(bytes: &[u8]) -> Result<Progress<Request>, ErrorCode> {
    let mut rest = bytes;
    let mut protocols = None;
    let mut algorithms = None;
    // An unknown critical record is reported as such only if nothing was
    // wrong before it (chrony's order).
    loop {
        let Some((record, after)) = split_record(rest)? else {
            return if bytes.len() >= MAX_MESSAGE {
                Err(ErrorCode::BadRequest)
            } else {
                Ok(Progress::Incomplete)
            };
        };
        if bytes.len() - after.len() > MAX_MESSAGE {
            return Err(ErrorCode::BadRequest);
        }
        rest = after;
        match record.kind {
            kind::END_OF_MESSAGE => {
                if !record.body.is_empty() || !rest.is_empty() {
                    return Err(ErrorCode::BadRequest);
                }
                break;
            }
            kind::NEXT_PROTOCOL | kind::AEAD => {
                let list = if record.kind == kind::AEAD {
                    &mut algorithms
                } else {
                    &mut protocols
                };
                let ids: Vec<u16> = u16s(record.body)?.collect();
                // A client MUST offer at least one of each (RFC 8915,
                // 4.1.2 and 4.1.5): an empty list is a bad request, as
                // chronyd answers, not a server's empty "none agreed".
                if ids.is_empty() {
                    return Err(ErrorCode::BadRequest);
                }
                // More than one of either is a bad request (RFC 8915, 4.1).
                let seen_before = list.replace(ids).is_some();
                if seen_before {
                    return Err(ErrorCode::BadRequest);
                }
            }
            // A client may say which server and port it would like; horad
            // answers with its own (or none), as RFC 8915 allows.
            kind::SERVER | kind::PORT => {}
            // Records only a server sends.
            kind::ERROR | kind::WARNING | kind::NEW_COOKIE => return Err(ErrorCode::BadRequest),
            _ if record.critical => return Err(ErrorCode::UnrecognizedCriticalRecord),
            _ => {}
        }
    }
    match (protocols, algorithms) {
        (Some(protocols), Some(algorithms)) => Ok(Progress::Complete(Request {
            protocols,
            algorithms,
        })),
        _ => Err(ErrorCode::BadRequest),
    }
}

/// What the server answers a [`Request`]: the choice (or that there is
/// none), where to send NTP, and the cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// NTPv4 with this AEAD, `cookies` for the client, and, when the NTP
    /// server is another host or port, where it is.
    Accept {
        /// The AEAD chosen.
        algorithm: Algorithm,
        /// The cookies, each sealed already.
        cookies: &'a [&'a [u8]],
        /// The NTP server's name or address (a Server record).
        server: Option<&'a str>,
        /// The NTP server's port (a Port record).
        port: Option<u16>,
    },
    /// The client offered no NTPv4: an empty Next Protocol record.
    NoProtocol,
    /// NTPv4, but no AEAD horad has: an empty AEAD record.
    NoAlgorithm,
    /// An Error record.
    Error(ErrorCode),
}

impl Response<'_> {
    /// What to answer `request`: NTPv4 with the first of
    /// [`Algorithm::PREFERRED`] the client offered (the caller then makes
    /// cookies for it and answers [`Response::Accept`]), or the response
    /// that says there is nothing to agree on.
    pub fn choose(request: &Request) -> Result<Algorithm, Response<'static>> {
        if !request.protocols.contains(&NTPV4) {
            return Err(Response::NoProtocol);
        }
        Algorithm::PREFERRED
            .into_iter()
            .find(|algorithm| request.algorithms.contains(&algorithm.id()))
            .ok_or(Response::NoAlgorithm)
    }

    /// The response's bytes, appended to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut record = |kind: u16, critical: bool, body: &[u8]| {
            let raw = if critical { kind | CRITICAL } else { kind };
            out.extend_from_slice(&raw.to_be_bytes());
            // Bodies here are at most a cookie or a host name (checked by
            // the config); never near 64 KiB.
            out.extend_from_slice(&(body.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
            out.extend_from_slice(&body[..body.len().min(usize::from(u16::MAX))]);
        };
        match self {
            Response::Accept {
                algorithm,
                cookies,
                server,
                port,
            } => {
                record(kind::NEXT_PROTOCOL, true, &NTPV4.to_be_bytes());
                record(kind::AEAD, true, &algorithm.id().to_be_bytes());
                if let Some(server) = server {
                    record(kind::SERVER, true, server.as_bytes());
                }
                if let Some(port) = port {
                    record(kind::PORT, true, &port.to_be_bytes());
                }
                for cookie in cookies.iter() {
                    record(kind::NEW_COOKIE, false, cookie);
                }
            }
            Response::NoProtocol => record(kind::NEXT_PROTOCOL, true, &[]),
            Response::NoAlgorithm => {
                record(kind::NEXT_PROTOCOL, true, &NTPV4.to_be_bytes());
                record(kind::AEAD, true, &[]);
            }
            Response::Error(code) => record(kind::ERROR, true, &code.code().to_be_bytes()),
        }
        record(kind::END_OF_MESSAGE, true, &[]);
    }
}

/// A client's request offering NTPv4 and `algorithms`, in order.
pub fn write_request(algorithms: &[Algorithm], out: &mut Vec<u8>) {
    let mut push = |kind: u16, body: &[u8]| {
        out.extend_from_slice(&(kind | CRITICAL).to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    };
    push(kind::NEXT_PROTOCOL, &NTPV4.to_be_bytes());
    let ids: Vec<u8> = algorithms
        .iter()
        .flat_map(|a| a.id().to_be_bytes())
        .collect();
    push(kind::AEAD, &ids);
    push(kind::END_OF_MESSAGE, &[]);
}

/// What a server answered, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The AEAD the server chose.
    pub algorithm: Algorithm,
    /// The cookies.
    pub cookies: Vec<Vec<u8>>,
    /// Where to send NTP, if not to the KE server's host.
    pub server: Option<String>,
    /// Which port, if not 123.
    pub port: Option<u16>,
}

/// Why a client can't use a server's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The server sent an Error record.
    #[error("the server answered with error {}", .0.code())]
    Server(ErrorCode),
    /// The server accepted neither NTPv4 nor any AEAD offered.
    #[error("the server supports none of the protocols or algorithms offered")]
    Refused,
    /// The answer broke the protocol.
    #[error("malformed key exchange answer: {0}")]
    Malformed(&'static str),
}

/// Reads a server's answer, complete or not yet.
pub fn read_response(bytes: &[u8]) -> Result<Progress<Answer>, AnswerError> {
    let malformed = AnswerError::Malformed;
    let mut rest = bytes;
    let (mut protocol, mut algorithm) = (None, None);
    let (mut cookies, mut server, mut port) = (Vec::new(), None, None);
    loop {
        let Some((record, after)) = split_record(rest).map_err(|_| malformed("record"))? else {
            return if bytes.len() >= MAX_MESSAGE {
                Err(malformed("too long"))
            } else {
                Ok(Progress::Incomplete)
            };
        };
        rest = after;
        match record.kind {
            kind::END_OF_MESSAGE => break,
            kind::NEXT_PROTOCOL => {
                protocol = Some(
                    u16s(record.body)
                        .map_err(|_| malformed("next protocol"))?
                        .collect::<Vec<_>>(),
                )
            }
            kind::AEAD => {
                algorithm = Some(
                    u16s(record.body)
                        .map_err(|_| malformed("aead"))?
                        .collect::<Vec<_>>(),
                )
            }
            kind::ERROR => {
                let code = u16s(record.body)
                    .map_err(|_| malformed("error"))?
                    .next()
                    .unwrap_or(u16::MAX);
                return Err(AnswerError::Server(ErrorCode::from_code(code)));
            }
            kind::NEW_COOKIE => cookies.push(record.body.to_vec()),
            kind::SERVER => {
                server =
                    Some(String::from_utf8(record.body.to_vec()).map_err(|_| malformed("server"))?)
            }
            kind::PORT => port = u16s(record.body).map_err(|_| malformed("port"))?.next(),
            kind::WARNING => {}
            _ if record.critical => return Err(malformed("unknown critical record")),
            _ => {}
        }
    }
    match (protocol.as_deref(), algorithm.as_deref()) {
        (Some([NTPV4]), Some([id])) => {
            let algorithm = Algorithm::from_id(*id).ok_or(malformed("an algorithm not offered"))?;
            if cookies.is_empty() {
                return Err(malformed("no cookies"));
            }
            Ok(Progress::Complete(Answer {
                algorithm,
                cookies,
                server,
                port,
            }))
        }
        (Some([]), _) | (Some([NTPV4]), Some([])) => Err(AnswerError::Refused),
        _ => Err(malformed("no single protocol and algorithm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u16, critical: bool, body: &[u8]) -> Vec<u8> {
        let mut out = ((if critical { kind | CRITICAL } else { kind }).to_be_bytes()).to_vec();
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn message(records: &[Vec<u8>]) -> Vec<u8> {
        records.concat()
    }

    const EOM: (u16, bool, &[u8]) = (0, true, &[]);

    fn eom() -> Vec<u8> {
        record(EOM.0, EOM.1, EOM.2)
    }

    #[test]
    fn chronys_request_with_its_non_critical_record_1024_is_read() {
        let bytes = message(&[
            record(1, true, &[0, 0]),
            record(4, true, &[0, 30, 0, 15]),
            record(1024, false, &[1, 2, 3]),
            eom(),
        ]);
        assert_eq!(
            read_request(&bytes),
            Ok(Progress::Complete(Request {
                protocols: vec![0],
                algorithms: vec![30, 15]
            }))
        );
        let request = Request {
            protocols: vec![0],
            algorithms: vec![15],
        };
        assert_eq!(Response::choose(&request), Ok(Algorithm::AesSivCmac256));
        let request = Request {
            protocols: vec![0],
            algorithms: vec![15, 30],
        };
        assert_eq!(Response::choose(&request), Ok(Algorithm::Aes128GcmSiv));
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete_not_an_error() {
        let bytes = message(&[record(1, true, &[0, 0]), record(4, true, &[0, 15]), eom()]);
        for end in 0..bytes.len() {
            assert_eq!(
                read_request(&bytes[..end]),
                Ok(Progress::Incomplete),
                "{end}"
            );
        }
    }

    #[test]
    fn malformed_requests_get_the_error_rfc_8915_names() {
        let np = record(1, true, &[0, 0]);
        let aead = record(4, true, &[0, 15]);
        let rows: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
            (
                "unknown critical",
                message(&[np.clone(), aead.clone(), record(77, true, &[]), eom()]),
                ErrorCode::UnrecognizedCriticalRecord,
            ),
            (
                "duplicate next protocol",
                message(&[np.clone(), np.clone(), aead.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "duplicate aead",
                message(&[np.clone(), aead.clone(), aead.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "no aead",
                message(&[np.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "no next protocol",
                message(&[aead.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "an empty next protocol list",
                message(&[record(1, true, &[]), aead.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "an empty aead list",
                message(&[np.clone(), record(4, true, &[]), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "odd list",
                message(&[record(1, true, &[0]), aead.clone(), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "a cookie from a client",
                message(&[np.clone(), aead.clone(), record(5, false, &[1; 8]), eom()]),
                ErrorCode::BadRequest,
            ),
            (
                "bytes after the end",
                message(&[np.clone(), aead.clone(), eom(), vec![0]]),
                ErrorCode::BadRequest,
            ),
            (
                "end with a body",
                message(&[np.clone(), aead.clone(), record(0, true, &[0, 0])]),
                ErrorCode::BadRequest,
            ),
        ];
        for (name, bytes, code) in rows {
            assert_eq!(read_request(&bytes), Err(code), "{name}");
        }
    }

    #[test]
    fn an_oversized_request_is_a_bad_request_before_and_after_its_end() {
        let padding = record(1000, false, &vec![0; MAX_MESSAGE]);
        assert_eq!(
            read_request(&padding[..MAX_MESSAGE]),
            Err(ErrorCode::BadRequest)
        );
        let np = record(1, true, &[0, 0]);
        let big = message(&[
            np,
            record(4, true, &[0, 15]),
            record(1000, false, &vec![0; MAX_MESSAGE]),
            eom(),
        ]);
        assert_eq!(read_request(&big), Err(ErrorCode::BadRequest));
    }

    #[test]
    fn the_server_answers_what_it_can_and_the_client_reads_it() {
        let cookies: [&[u8]; 2] = [&[1; 104], &[2; 104]];
        let mut out = Vec::new();
        Response::Accept {
            algorithm: Algorithm::AesSivCmac256,
            cookies: &cookies,
            server: Some("ntp.example"),
            port: Some(1234),
        }
        .write(&mut out);
        assert_eq!(
            read_response(&out),
            Ok(Progress::Complete(Answer {
                algorithm: Algorithm::AesSivCmac256,
                cookies: vec![vec![1; 104], vec![2; 104]],
                server: Some("ntp.example".into()),
                port: Some(1234),
            }))
        );
        for (response, error) in [
            (Response::NoProtocol, AnswerError::Refused),
            (Response::NoAlgorithm, AnswerError::Refused),
            (
                Response::Error(ErrorCode::BadRequest),
                AnswerError::Server(ErrorCode::BadRequest),
            ),
        ] {
            let mut out = Vec::new();
            response.write(&mut out);
            assert_eq!(read_response(&out), Err(error));
        }
        let request = Request {
            protocols: vec![1],
            algorithms: vec![15],
        };
        assert_eq!(Response::choose(&request), Err(Response::NoProtocol));
        let request = Request {
            protocols: vec![0],
            algorithms: vec![17],
        };
        assert_eq!(Response::choose(&request), Err(Response::NoAlgorithm));
    }

    #[test]
    fn the_clients_request_is_one_the_server_reads() {
        let mut out = Vec::new();
        write_request(&Algorithm::PREFERRED, &mut out);
        assert_eq!(
            read_request(&out),
            Ok(Progress::Complete(Request {
                protocols: vec![0],
                algorithms: vec![30, 15]
            }))
        );
    }
}
