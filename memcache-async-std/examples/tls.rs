//! The async-std client over TLS (feature `tls`): trust a CA bundle, optionally show a client
//! certificate (mTLS), and use the client as usual. Every connection handshakes within the
//! connect timeout, and reconnects handshake again.
//!
//! Run against `memcached -Z` (see the README's TLS section):
//! `cargo run -p memcache-async-std --features tls --example async_std_tls -- 127.0.0.1:11211 ca.pem [client.pem client.key]`

use memcache_async_std::tls::TlsConfig;
use memcache_async_std::{Client, Error, Item};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().cloned().unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let ca = std::fs::read(args.get(1).map_or("ca.pem", String::as_str))?;
    let client_cert = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some((std::fs::read(cert)?, std::fs::read(key)?)),
        _ => None,
    };
    let tls = TlsConfig::from_pem(&ca, client_cert.as_ref().map(|(c, k)| (&c[..], &k[..])))?;
    let client = Client::builder().servers([addr]).tls(tls).build()?;
    async_std::task::block_on(async {
        client.set(&Item::new("demo:tls", "over TLS")).await?;
        let item = client.get("demo:tls").await?;
        println!("get over TLS -> {:?}", String::from_utf8_lossy(&item.value));
        Ok(())
    })
}
