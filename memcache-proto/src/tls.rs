//! TLS settings shared by every adapter: which CA to trust, which client certificate to show,
//! and which name to verify. No IO: the adapters run the handshake over their own sockets
//! (`rustls::StreamOwned`, `tokio-rustls`, `futures-rustls`) with what this module hands them.
//!
//! Enabled by the `tls` feature (rustls with the *ring* provider) or `tls-aws-lc-rs` (the
//! aws-lc-rs provider; chosen when both are on). Configs made here name their provider
//! explicitly, so they never depend on rustls's process-wide default provider, which panics
//! when none or two are installed.
//!
//! ```no_run
//! # fn demo() -> Result<(), memcache_proto::Error> {
//! use memcache_proto::tls::TlsConfig;
//!
//! let ca = std::fs::read("ca.pem")?;
//! // Server authentication only; `Some((chain, key))` adds a client certificate (mTLS).
//! let tls = TlsConfig::from_pem(&ca, None)?.server_name("cache.internal");
//! # let _ = tls;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};

use crate::error::{TlsError, TlsFailure};
use crate::{Endpoint, Error, ServerAddr};

/// How every new connection is secured: a rustls [`ClientConfig`] and, optionally, the name to
/// verify instead of each server's host. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .field("client_auth", &self.config.client_auth_cert_resolver.has_certs())
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Uses `config` as it is: any crypto provider, roots, client certificate or resumption
    /// policy the caller chose.
    pub fn new(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig { config, server_name: None }
    }

    /// Trusts the CA certificates in `ca_pem` (one or more PEM blocks) and, with
    /// `client = Some((chain_pem, key_pem))`, presents that certificate chain and private key
    /// (PKCS#8, PKCS#1 or SEC1) to servers that ask for one (mTLS).
    ///
    /// The config uses this crate's provider ([`provider`]) and rustls's safe default protocol
    /// versions. A PEM that holds no certificate or key, or a key that does not fit the
    /// provider, is an [`Error::Tls`] saying which.
    pub fn from_pem(ca_pem: &[u8], client: Option<(&[u8], &[u8])>) -> Result<TlsConfig, Error> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca_pem, "the CA bundle")? {
            roots.add(cert).map_err(|e| config_error("a CA certificate is not usable", e))?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("the crypto provider supports no safe TLS version", e))?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((chain_pem, key_pem)) => {
                let chain = certificates(chain_pem, "the client certificate chain")?;
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| config_error("the client key holds no usable private key", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error("the client certificate and key are not usable", e))?
            }
        };
        Ok(TlsConfig::new(Arc::new(config)))
    }

    /// Verifies every server as `name` (and sends it as SNI) instead of the host part of its
    /// address: for servers listed by IP address whose certificate names a host, or a
    /// certificate shared by a whole cluster.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsConfig {
        self.server_name = Some(name.into());
        self
    }

    /// The rustls config every connection is made with.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name `server`'s certificate must carry: the one set with
    /// [`server_name`](Self::server_name), else the host part of the server's address (an IP
    /// literal is verified as an IP address). Unix sockets have no name, so TLS over one is
    /// refused.
    pub fn server_name_for(&self, server: &ServerAddr) -> Result<ServerName<'static>, Error> {
        let host = match (&self.server_name, server.endpoint()) {
            (Some(name), _) => name.as_str(),
            (None, Endpoint::Unix(_)) => {
                return Err(TlsError::new(
                    TlsFailure::Config,
                    format!("{server} is a Unix socket: TLS needs a TCP server (or set a server name)"),
                    None,
                )
                .into());
            }
            (None, _) => host_of(server.as_str()),
        };
        ServerName::try_from(host.to_owned())
            .map_err(|e| config_error(&format!("{host:?} (for {server}) is not a valid server name"), e))
    }

    /// A fresh client session for `server`, for adapters that drive rustls themselves.
    pub fn connection(&self, server: &ServerAddr) -> Result<ClientConnection, Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name_for(server)?)
            .map_err(|e| Error::Tls(describe(e)))
    }

    /// Fails, when a client is built, for a server TLS cannot reach: a Unix socket (memcached
    /// serves TLS only on TCP) or an address whose host is not a valid server name.
    pub fn check(&self, servers: &[ServerAddr]) -> Result<(), Error> {
        for server in servers {
            if let Endpoint::Unix(_) = server.endpoint() {
                return Err(TlsError::new(
                    TlsFailure::Config,
                    format!("{server} is a Unix socket; memcached serves TLS only on TCP"),
                    None,
                )
                .into());
            }
            self.server_name_for(server)?;
        }
        Ok(())
    }
}

/// The crypto provider this crate builds configs with: aws-lc-rs with the `tls-aws-lc-rs`
/// feature, else *ring*.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "tls-aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "tls-aws-lc-rs"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(&format!("{what} is not valid PEM"), e))?;
    if certs.is_empty() {
        return Err(TlsError::new(TlsFailure::Config, format!("{what} holds no certificate"), None).into());
    }
    Ok(certs)
}

fn config_error<E: std::error::Error + Send + Sync + 'static>(what: &str, e: E) -> Error {
    Error::Tls(TlsError::new(TlsFailure::Config, format!("{what}: {e}"), Some(Arc::new(e))))
}

/// The TLS failure inside an IO error from a rustls stream, if there is one.
pub(crate) fn from_io(e: io::Error) -> Result<TlsError, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return Err(e);
    }
    match e.into_inner().map(|inner| inner.downcast::<rustls::Error>()) {
        Some(Ok(tls)) => Ok(describe(*tls)),
        Some(Err(other)) => Err(io::Error::other(other)),
        None => Err(io::Error::other("TLS error without details")),
    }
}

/// Names what went wrong in words a user acts on; the rustls error stays as the source.
fn describe(e: rustls::Error) -> TlsError {
    use rustls::Error as E;
    let (failure, what) = match &e {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => (
            TlsFailure::CertificateNotTrusted,
            "the server's certificate is not trusted: no configured CA signed it",
        ),
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => (TlsFailure::CertificateInvalid, "the server's certificate is not valid for its name"),
        E::InvalidCertificate(_) => (TlsFailure::CertificateInvalid, "the server's certificate was refused"),
        E::AlertReceived(AlertDescription::CertificateRequired) => (
            TlsFailure::ClientCertificateRequired,
            "the server demanded a client certificate and none was sent",
        ),
        E::AlertReceived(
            AlertDescription::UnknownCA | AlertDescription::BadCertificate | AlertDescription::AccessDenied,
        ) => (TlsFailure::ClientCertificateRejected, "the server rejected the client certificate"),
        E::AlertReceived(AlertDescription::HandshakeFailure) => {
            (TlsFailure::Handshake, "the server refused the handshake (does it demand a client certificate?)")
        }
        _ => (TlsFailure::Handshake, "TLS failure"),
    };
    TlsError::new(failure, format!("{what} ({e})"), Some(Arc::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("cache.internal:11211"), "cache.internal");
        assert_eq!(host_of("127.0.0.1:11211"), "127.0.0.1");
        assert_eq!(host_of("[::1]:11211"), "::1");
        assert_eq!(host_of("cache.internal"), "cache.internal");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn default_name_is_the_host_and_ip_literals_are_ips() {
        let tls = TlsConfig::new(Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("provider supports TLS 1.2/1.3")
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        ));
        let ip = tls.server_name_for(&ServerAddr::resolve("127.0.0.1:11211").expect("ip"));
        assert!(matches!(ip, Ok(ServerName::IpAddress(_))), "{ip:?}");
        let custom = tls.server_name_for(&ServerAddr::custom("cache.internal:11211"));
        assert_eq!(custom.expect("dns name").to_str(), "cache.internal");
        let unix = ServerAddr::unix("/tmp/memcached.sock");
        assert!(matches!(tls.check(std::slice::from_ref(&unix)), Err(Error::Tls(_))));
        let named = tls.clone().server_name("cluster.internal");
        assert_eq!(named.server_name_for(&unix).expect("explicit name").to_str(), "cluster.internal");
        assert!(named.check(&[unix]).is_err(), "a Unix socket is refused even with a name");
        let bad = tls.server_name("not a name!");
        assert!(matches!(bad.check(&[ServerAddr::custom("x:1")]), Err(Error::Tls(_))));
    }

    #[test]
    fn bad_pem_is_an_error_that_says_what() {
        let e = TlsConfig::from_pem(b"not pem", None).expect_err("no certificate");
        assert!(e.to_string().contains("CA bundle holds no certificate"), "{e}");
        assert!(matches!(&e, Error::Tls(t) if t.failure() == TlsFailure::Config), "{e:?}");
    }

    #[test]
    fn rustls_errors_inside_io_errors_become_tls_errors() {
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let e = Error::from(io);
        assert!(e.to_string().contains("not trusted"), "{e}");
        assert!(e.is_connection_broken());
        assert!(std::error::Error::source(&e).is_some(), "the rustls error is the source");
        let alert = io::Error::other(rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
        assert!(Error::from(alert).to_string().contains("demanded a client certificate"));
        assert!(matches!(Error::from(io::Error::other("plain")), Error::Io(_)));
    }
}
