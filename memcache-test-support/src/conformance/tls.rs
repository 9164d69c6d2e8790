//! Connectors and TLS: a custom connector opens every connection (and reopens them), mTLS
//! works with a client certificate and fails with an error that says why without one, a TLS
//! server that restarts under pooled connections is reached again, and TLS to a Unix socket is
//! refused when the client is built. Each test starts the TLS servers it needs itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memcache_proto::{Error, Item, TlsFailure};

use super::{Adapter, ClientConfig, check_item, client};
use crate::memcached::Memcached;
use crate::tls::{TlsServer, pki};

/// Every connection goes through the connector given to `Builder::connector`, including the
/// new ones after the server restarted.
pub async fn custom_connector_opens_every_connection<A: Adapter>() {
    let mut m = Memcached::start();
    let opened = Arc::new(AtomicUsize::new(0));
    let c = client::<A>(ClientConfig::new([m.addr()]).count_connections(Arc::clone(&opened)));
    expect_ok!(A::set(&c, &Item::new("conn:k", "v")).await, "set through the connector");
    check_item(&expect_ok!(A::get(&c, "conn:k").await, "get"), "conn:k", b"v", 0, "via connector");
    let first = opened.load(Ordering::SeqCst);
    assert!(first >= 1, "the connector opened the connection(s) the calls used");
    assert_eq!(m.get_direct("conn:k").as_deref(), Some(&b"v"[..]), "the calls reached the server");

    m.restart();
    expect_err!(A::get(&c, "conn:k").await, Error::CacheMiss, "get from the restarted (empty) server");
    expect_ok!(A::set(&c, &Item::new("conn:k", "v2")).await, "set after the restart");
    assert_eq!(m.get_direct("conn:k").as_deref(), Some(&b"v2"[..]));
    assert!(opened.load(Ordering::SeqCst) > first, "the new connections came from the connector too");
}

/// mTLS: a client with a certificate the server trusts works; one without gets an error that
/// says the server demanded a certificate; one that does not trust the server's CA gets an
/// error that says the certificate is not trusted. Neither failure panics or poisons the
/// client's later calls.
pub async fn mtls_client_certificates_and_trust<A: Adapter>() {
    let m = Memcached::start_tls(TlsServer::mtls());
    let timeout = Duration::from_secs(2);
    let with_cert = client::<A>(ClientConfig::new([m.addr()]).tls(pki().client_with_cert()).timeout(timeout));
    expect_ok!(A::set(&with_cert, &Item::new("mtls:k", "secret")).await, "set with a client certificate");
    check_item(&expect_ok!(A::get(&with_cert, "mtls:k").await, "get"), "mtls:k", b"secret", 0, "mTLS");

    let without = client::<A>(ClientConfig::new([m.addr()]).tls(pki().client()).timeout(timeout));
    for round in 0..2 {
        match A::get(&without, "mtls:k").await {
            Err(Error::Tls(e)) if e.failure() == TlsFailure::ClientCertificateRequired => {
                assert!(e.to_string().contains("demanded a client certificate"), "message: {e}");
            }
            other => panic!(
                "round {round}: without a client certificate: expected Err(Tls(required)), got {other:?}"
            ),
        }
    }

    let wrong_ca =
        client::<A>(ClientConfig::new([m.addr()]).tls(pki().client_trusting_other_ca()).timeout(timeout));
    match A::get(&wrong_ca, "mtls:k").await {
        Err(Error::Tls(e)) if e.failure() == TlsFailure::CertificateNotTrusted => {
            assert!(e.to_string().contains("not trusted"), "message: {e}");
            assert!(std::error::Error::source(&e).is_some(), "the rustls error is the source: {e:?}");
        }
        other => panic!("with the wrong CA: expected Err(Tls(not trusted)), got {other:?}"),
    }
    check_item(&expect_ok!(A::get(&with_cert, "mtls:k").await, "get again"), "mtls:k", b"secret", 0, "after");
}

/// A TLS server restarted while the client holds two pooled TLS connections: the next call,
/// a write, succeeds on a new handshake, every time.
pub async fn tls_server_restart_is_survived<A: Adapter>() {
    let mut m = Memcached::start_tls(TlsServer::plain());
    let cfg = ClientConfig::new([m.addr()]).tls(pki().client()).timeout(Duration::from_secs(2));
    let c = client::<A>(cfg.max_conns(2));
    for round in 0..3 {
        let key = format!("restart:{round}");
        // Enough concurrent sets that both pooled connections are likely open when the server
        // restarts (the async pool packs callers onto one connection until it saturates).
        let workers: Vec<_> = (0..48)
            .map(|w| {
                let (c, key) = (c.clone(), format!("{key}:{w}"));
                A::spawn(async move { A::set(&c, &Item::new(key, "v")).await })
            })
            .collect();
        for w in workers {
            expect_ok!(w.await, "round {round}: set over TLS");
        }
        m.restart();
        // A write first: it is never sent twice, so it succeeds only if the dead pooled
        // connections are found dead before it is written (each is checked before a write).
        expect_ok!(
            A::set(&c, &Item::new(key.as_str(), "after")).await,
            "round {round}: first call after the restart"
        );
        assert_eq!(m.get_direct(&key).as_deref(), Some(&b"after"[..]), "round {round}");
        expect_err!(A::get(&c, &format!("{key}:0")).await, Error::CacheMiss, "round {round}: a new server");
    }
}

/// TLS to a Unix-socket server is refused when the client is built, with an error that says
/// why.
pub async fn tls_to_a_unix_socket_is_refused_at_build<A: Adapter>() {
    let cfg = ClientConfig::new(["/run/memcached/memcached.sock"]).tls(pki().client());
    match A::connect(cfg) {
        Err(Error::Tls(e)) if e.failure() == TlsFailure::Config => {
            assert!(e.to_string().contains("Unix socket"), "message: {e}");
        }
        Err(other) => panic!("expected Err(Tls(config)), got Err({other:?})"),
        Ok(_) => panic!("a client with TLS to a Unix socket was built"),
    }
}
