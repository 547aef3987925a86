//! A private CA and a server certificate for 127.0.0.1 and `localhost`,
//! written as PEM files, for the NTS tests (rcgen: no openssl needed).

#![allow(dead_code)] // Each test file uses a different part.

use std::path::{Path, PathBuf};

/// The files of one CA and its server certificate.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA's certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server's certificate chain, leaf first.
    pub chain: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// A new CA and server certificate in `dir`, their files named after `name`.
pub fn make(dir: &Path, name: &str) -> Pki {
    make_valid(dir, name, None)
}

/// [`make`], the server's certificate valid from the first of January of
/// one year to that of another (rcgen's default, 1975 to 4096, for `None`).
pub fn make_valid(dir: &Path, name: &str, years: Option<(i32, i32)>) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("hora test CA {name}"));
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA signs itself");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
    if let Some((from, until)) = years {
        server_params.not_before = rcgen::date_time_ymd(from, 1, 1);
        server_params.not_after = rcgen::date_time_ymd(until, 1, 1);
    }
    let server_key = KeyPair::generate().expect("a server key");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("the CA signs the server's certificate");
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        chain: dir.join(format!("{name}-chain.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write the CA");
    std::fs::write(&pki.chain, server_cert.pem()).expect("write the chain");
    std::fs::write(&pki.key, server_key.serialize_pem()).expect("write the key");
    // A private key readable by others is refused, as sshd refuses one.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the key");
    pki
}

/// Three server certificates no client would take, in `dir`, each with
/// the words horad refuses it with: an expired one, one not valid yet, and
/// a chain whose second PEM block is garbage.
pub fn unservable(dir: &Path) -> [(Pki, &'static str); 3] {
    let garbage = make(dir, "garbage");
    let chain = std::fs::read_to_string(&garbage.chain).expect("read the chain");
    std::fs::write(
        &garbage.chain,
        format!("{chain}-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n"),
    )
    .expect("write the chain");
    [
        (
            make_valid(dir, "expired", Some((2000, 2001))),
            "the certificate expired at",
        ),
        (
            make_valid(dir, "early", Some((2090, 2091))),
            "the certificate is not valid before",
        ),
        (
            garbage,
            "certificate 2 of the chain: not an X.509 certificate",
        ),
    ]
}
