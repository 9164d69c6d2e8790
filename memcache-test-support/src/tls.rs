//! TLS for tests: certificates generated at run time, the files `memcached -Z` reads, and the
//! switch that makes a whole test binary start TLS servers.
//!
//! [`pki`] makes, once per process, a test CA with a server certificate (for `127.0.0.1` and
//! `localhost`) and a client certificate, plus a second, unrelated CA and a client certificate
//! it signed, for the "not trusted" cases. [`Memcached::start_tls`](crate::Memcached::start_tls)
//! starts a server with them; [`serve_tls_by_default`] makes every
//! [`Memcached::start`](crate::Memcached::start) of the process do so, which is how the
//! conformance suite reruns its groups over TLS without a copy of any test.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::Memcached;
use crate::memcached::{Listen, START_ATTEMPTS, free_port, make_temp_dir};
use memcache_proto::tls::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A test public-key infrastructure, all PEM.
#[derive(Debug)]
pub struct Pki {
    /// The CA that signed the server and client certificates.
    pub ca_pem: String,
    /// The server's certificate, valid for `127.0.0.1` and `localhost`.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// A client certificate the server trusts (signed by [`ca_pem`](Self::ca_pem)).
    pub client_cert_pem: String,
    /// Its private key.
    pub client_key_pem: String,
    /// A CA that signed nothing the server uses.
    pub other_ca_pem: String,
    /// A client certificate signed by [`other_ca_pem`](Self::other_ca_pem): the server does
    /// not trust it.
    pub other_client_cert_pem: String,
    /// Its private key.
    pub other_client_key_pem: String,
}

/// The process's test certificates, generated on first use (a few milliseconds).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::generate().unwrap_or_else(|e| panic!("generating test certificates: {e}")))
}

impl Pki {
    fn generate() -> Result<Pki, rcgen::Error> {
        let ca = make_ca("memcache test CA")?;
        let other_ca = make_ca("unrelated test CA")?;
        let (server_cert_pem, server_key_pem) =
            make_leaf(&ca, &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_cert_pem, client_key_pem) = make_leaf(&ca, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (other_client_cert_pem, other_client_key_pem) =
            make_leaf(&other_ca, &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        Ok(Pki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem: other_ca.pem(),
            other_client_cert_pem,
            other_client_key_pem,
        })
    }

    /// A client config that trusts the test CA and has no client certificate.
    pub fn client(&self) -> TlsConfig {
        tls_config(&self.ca_pem, None)
    }

    /// A client config that trusts the test CA and shows the trusted client certificate.
    pub fn client_with_cert(&self) -> TlsConfig {
        tls_config(&self.ca_pem, Some((&self.client_cert_pem, &self.client_key_pem)))
    }

    /// A client config that shows a certificate the server does not trust.
    pub fn client_with_untrusted_cert(&self) -> TlsConfig {
        tls_config(&self.ca_pem, Some((&self.other_client_cert_pem, &self.other_client_key_pem)))
    }

    /// A client config that trusts only the unrelated CA: the server's certificate is not
    /// trusted.
    pub fn client_trusting_other_ca(&self) -> TlsConfig {
        tls_config(&self.other_ca_pem, Some((&self.client_cert_pem, &self.client_key_pem)))
    }
}

fn tls_config(ca: &str, client: Option<(&str, &str)>) -> TlsConfig {
    let client = client.map(|(cert, key)| (cert.as_bytes(), key.as_bytes()));
    TlsConfig::from_pem(ca.as_bytes(), client).unwrap_or_else(|e| panic!("test TLS config: {e}"))
}

fn make_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A certificate for `names` signed by `ca`, and its key, as PEM.
fn make_leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("memcache test client"));
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a TLS memcached demands of its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsServer {
    /// `ssl_verify_mode=2`: a client must show a certificate signed by the test CA (mTLS).
    pub require_client_cert: bool,
}

impl TlsServer {
    /// Server authentication only.
    pub fn plain() -> TlsServer {
        TlsServer::default()
    }

    /// mTLS: clients must show a certificate the test CA signed.
    pub fn mtls() -> TlsServer {
        TlsServer { require_client_cert: true }
    }
}

/// The certificate files of one TLS server, in a directory removed when this is dropped.
#[derive(Debug)]
pub(crate) struct ServerFiles {
    dir: PathBuf,
    server: TlsServer,
}

impl ServerFiles {
    pub(crate) fn write(dir: PathBuf, server: TlsServer) -> ServerFiles {
        let pki = pki();
        for (name, pem) in
            [("ca.pem", &pki.ca_pem), ("cert.pem", &pki.server_cert_pem), ("key.pem", &pki.server_key_pem)]
        {
            let path = dir.join(name);
            fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        ServerFiles { dir, server }
    }

    /// memcached's TLS arguments. The session cache lets rustls resume sessions (it tries by
    /// default; memcached's OpenSSL refuses a resumption without the cache).
    pub(crate) fn args(&self) -> Vec<String> {
        let file = |name: &str| path_arg(&self.dir.join(name));
        let mut options = format!(
            "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_session_cache",
            file("cert.pem"),
            file("key.pem"),
            file("ca.pem")
        );
        if self.server.require_client_cert {
            options.push_str(",ssl_verify_mode=2");
        }
        vec!["-Z".into(), "-o".into(), options]
    }
}

impl Drop for ServerFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path_arg(path: &Path) -> String {
    let arg = path.to_string_lossy().into_owned();
    assert!(!arg.contains(','), "memcached's -o options cannot hold a path with a comma: {arg}");
    arg
}

impl Memcached {
    /// Starts `memcached -Z` with the test certificates ([`crate::tls::pki`]): TLS on
    /// [`addr`](Memcached::addr), and plain text on [`plain_addr`](Memcached::plain_addr), which
    /// the helpers ([`Memcached::request`] and friends) use. `server` says whether clients must
    /// show a certificate.
    pub fn start_tls(server: TlsServer) -> Memcached {
        Memcached::start_tls_with_args(server, &[])
    }

    /// Like [`Memcached::start_tls`], with `extra` appended to the command line.
    pub fn start_tls_with_args(server: TlsServer, extra: &[&str]) -> Memcached {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let files = Arc::new(ServerFiles::write(make_temp_dir(), server));
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let (port, plain_port) = (free_port(), free_port());
            let listen = Listen::Tls { port, plain_port, files: Arc::clone(&files) };
            match Memcached::launch(listen, extra.clone()) {
                Ok(server) => return server,
                Err(e) => errors.push(e),
            }
        }
        panic!("could not start memcached with TLS after {START_ATTEMPTS} attempts: {errors:#?}");
    }
}

/// Whether [`Memcached::start`](crate::Memcached::start) starts TLS servers in this process.
static TLS_BY_DEFAULT: OnceLock<bool> = OnceLock::new();

/// Makes every [`Memcached::start`](crate::Memcached::start) of this process start a TLS
/// server (and the conformance suite's clients use [`Pki::client`]). A process is one or the
/// other: the TLS suite lives in its own test binary.
///
/// # Panics
/// If this process already started a server in plain mode.
pub fn serve_tls_by_default() {
    let tls = *TLS_BY_DEFAULT.get_or_init(|| true);
    assert!(tls, "this test binary already runs plain servers; run the TLS suite in its own test binary");
}

/// Whether this process serves TLS by default; once asked, the answer is fixed.
pub fn tls_by_default() -> bool {
    *TLS_BY_DEFAULT.get_or_init(|| false)
}
