//! Self-tests of the TLS machinery: `memcached -Z` with run-time certificates, talked to with
//! rustls directly (no client under test).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use memcache_proto::tls::TlsConfig;
use memcache_proto::{Error, ServerAddr, TlsFailure};
use memcache_test_support::Memcached;
use memcache_test_support::tls::{TlsServer, pki};

/// `version` over TLS to `m` with `tls`: the reply line, or the error the handshake or the
/// read gave (converted as the clients convert it).
fn tls_version(m: &Memcached, tls: &TlsConfig) -> Result<String, Error> {
    let server = ServerAddr::resolve(&m.addr())?;
    let mut session = tls.connection(&server)?;
    let mut sock = TcpStream::connect(m.addr())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut stream = rustls::Stream::new(&mut session, &mut sock);
    stream.write_all(b"version\r\n")?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut buf)? {
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            n => reply.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[test]
fn tls_server_answers_over_tls_and_helpers_use_its_plain_port() {
    let mut m = Memcached::start_tls(TlsServer::plain());
    assert!(m.is_tls());
    assert_ne!(m.addr(), m.plain_addr());
    let reply = tls_version(&m, &pki().client()).expect("version over TLS");
    assert!(reply.starts_with("VERSION "), "{reply:?}");
    m.request(b"set k 0 0 1\r\nv\r\n");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"v"[..]), "helpers reach the server in plain text");
    let stats = m.stats_of("settings");
    assert_eq!(stats.get("ssl_enabled").map(String::as_str), Some("yes"), "{stats:?}");

    m.restart();
    assert!(tls_version(&m, &pki().client()).is_ok(), "a restarted server speaks TLS again");
    let untrusted = tls_version(&m, &pki().client_trusting_other_ca()).expect_err("wrong CA");
    assert!(
        matches!(&untrusted, Error::Tls(t) if t.failure() == TlsFailure::CertificateNotTrusted),
        "{untrusted:?}"
    );
    assert!(untrusted.to_string().contains("not trusted"), "{untrusted}");
}

#[test]
fn mtls_server_demands_a_trusted_client_certificate() {
    let m = Memcached::start_tls(TlsServer::mtls());
    let reply = tls_version(&m, &pki().client_with_cert()).expect("version with a client certificate");
    assert!(reply.starts_with("VERSION "), "{reply:?}");

    let none = tls_version(&m, &pki().client()).expect_err("no client certificate");
    assert!(
        matches!(&none, Error::Tls(t) if t.failure() == TlsFailure::ClientCertificateRequired),
        "{none:?}"
    );
    assert!(none.to_string().contains("demanded a client certificate"), "{none}");

    let rejected = tls_version(&m, &pki().client_with_untrusted_cert()).expect_err("untrusted client cert");
    assert!(
        matches!(&rejected, Error::Tls(t) if t.failure() == TlsFailure::ClientCertificateRejected),
        "{rejected:?}"
    );
}
