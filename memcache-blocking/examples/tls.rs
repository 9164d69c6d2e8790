//! The blocking client over TLS (feature `tls`): trust a CA bundle, optionally show a client
//! certificate (mTLS), and use the client as usual. Every connection handshakes within the
//! connect timeout; pooled connections are reused, and failed ones are replaced.
//!
//! Run against `memcached -Z` (see the README's TLS section):
//! `cargo run -p memcache-blocking --features tls --example blocking_tls -- 127.0.0.1:11211 ca.pem [client.pem client.key]`

use memcache_blocking::tls::TlsConfig;
use memcache_blocking::{Client, Error, Item};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().cloned().unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let ca = std::fs::read(args.get(1).map_or("ca.pem", String::as_str))?;
    let client_cert = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some((std::fs::read(cert)?, std::fs::read(key)?)),
        _ => None,
    };
    // The server is verified as the host part of its address (an IP literal as an IP);
    // `.server_name("cache.internal")` would verify another name instead.
    let tls = TlsConfig::from_pem(&ca, client_cert.as_ref().map(|(c, k)| (&c[..], &k[..])))?;
    let client = Client::builder().servers([addr]).tls(tls).build()?;
    client.set(&Item::new("demo:tls", "over TLS"))?;
    let item = client.get("demo:tls")?;
    println!("get over TLS -> {:?}", String::from_utf8_lossy(&item.value));
    Ok(())
}
