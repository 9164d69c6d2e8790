//! Typed values: a serde struct stored as JSON and read back, a compare-and-swap on it, and
//! a value another client stored refused instead of mis-decoded.
//!
//! Needs the `json` feature (the example enables it for itself) and a local memcached:
//! `cargo run -p memcache-blocking --example typed -- 127.0.0.1:11211`

use memcache_blocking::codec::{Integer, Json, TypedItem};
use memcache_blocking::{Client, Error, Item};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    visits: u32,
}

fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11211".to_owned());
    let client = Client::new([addr.as_str()])?;
    let profiles = client.typed::<Profile, _>(Json::default());

    let ada = Profile { id: 1, name: "Ada".into(), visits: 0 };
    profiles.set(&TypedItem::new("demo:profile:1", ada.clone()).with_expiration(300))?;
    let read = profiles.get("demo:profile:1")?;
    assert_eq!(read.value, ada);
    println!("typed get -> {:?} (cas token {:?})", read.value, read.cas);

    // Read, modify, write back only if nobody changed it meanwhile: the CAS token travels with
    // the typed item.
    for _ in 0..3 {
        loop {
            let mut item = profiles.get("demo:profile:1")?;
            item.value.visits += 1;
            match profiles.compare_and_swap(&item) {
                Ok(()) => break,
                Err(Error::CasConflict) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    println!("after 3 cas updates -> visits = {}", profiles.get("demo:profile:1")?.value.visits);

    // A value stored by another client (raw bytes, flags 0) is refused, not mis-decoded, and
    // the client carries on.
    client.set(&Item::new("demo:profile:2", r#"{"id":2,"name":"raw","visits":0}"#))?;
    match profiles.get("demo:profile:2") {
        Err(Error::Codec(e)) => println!("raw value read as JSON -> refused: {e}"),
        other => println!("raw value read as JSON -> unexpected {other:?}"),
    }

    // Integers use pymemcache's flag, so memcached's incr works on them and Python reads them.
    let counters = client.typed::<u64, _>(Integer::default());
    counters.set(&TypedItem::new("demo:hits", 41))?;
    client.increment("demo:hits", 1)?;
    println!("typed counter after incr -> {}", counters.get("demo:hits")?.value);
    Ok(())
}
