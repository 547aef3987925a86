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
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("hora test CA {name}"));
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA signs itself");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
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
    pki
}
