//! Scripts for [`SimServer`](super::SimServer)s: a memcached model to answer from, and the
//! handler type that decides, request by request, what the server does.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::net::{Action, Request};

/// A server's script: called for every request read, in order, with the server's [`Store`];
/// returns what the server does. Answering is `vec![Action::Reply(store.answer(req))]`.
pub type Handler = Box<dyn FnMut(&Request, &mut Store) -> Vec<Action> + Send>;

/// A server that answers every request as memcached would.
pub fn memcached() -> Handler {
    Box::new(|req, store| vec![Action::Reply(store.answer(req))])
}

/// The items of a simulated server, and memcached's answer to each text-protocol command.
#[derive(Debug, Default)]
pub struct Store {
    items: HashMap<String, Stored>,
    next_cas: u64,
}

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    flags: u32,
    cas: u64,
}

impl Store {
    /// The value stored at `key`.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.items.get(key).map(|s| s.data.clone())
    }

    /// Stores `data` at `key`.
    pub fn set(&mut self, key: &str, data: impl Into<Bytes>) {
        self.next_cas += 1;
        self.items.insert(key.to_owned(), Stored { data: data.into(), flags: 0, cas: self.next_cas });
    }

    /// Applies `req` and returns memcached's answer (empty for `noreply`).
    pub fn answer(&mut self, req: &Request) -> Bytes {
        let args = req.args();
        let noreply = args.last() == Some(&"noreply");
        let answer = match req.verb() {
            "get" | "gets" => self.values(&args, req.verb() == "gets"),
            "gat" | "gats" => self.values(args.get(1..).unwrap_or(&[]), req.verb() == "gats"),
            "set" | "add" | "replace" | "append" | "prepend" | "cas" => self.store(req, &args),
            "delete" => self.delete(&args),
            "incr" | "decr" => self.arith(req.verb() == "incr", &args),
            "touch" => self.keyed(&args, "TOUCHED\r\n"),
            "version" => Bytes::from_static(b"VERSION 1.6.18-sim\r\n"),
            "flush_all" => {
                self.items.clear();
                Bytes::from_static(b"OK\r\n")
            }
            "stats" => Bytes::from_static(b"STAT pid 1\r\nEND\r\n"),
            _ => Bytes::from_static(b"ERROR\r\n"),
        };
        if noreply { Bytes::new() } else { answer }
    }

    fn values(&self, keys: &[&str], cas: bool) -> Bytes {
        let mut out = BytesMut::new();
        for key in keys {
            if let Some(s) = self.items.get(*key) {
                let head = match cas {
                    true => format!("VALUE {key} {} {} {}\r\n", s.flags, s.data.len(), s.cas),
                    false => format!("VALUE {key} {} {}\r\n", s.flags, s.data.len()),
                };
                out.put_slice(head.as_bytes());
                out.put_slice(&s.data);
                out.put_slice(b"\r\n");
            }
        }
        out.put_slice(b"END\r\n");
        out.freeze()
    }

    fn store(&mut self, req: &Request, args: &[&str]) -> Bytes {
        let (Some(key), Some(flags), Some(data)) =
            (args.first(), args.get(1).and_then(|f| f.parse().ok()), req.data.clone())
        else {
            return Bytes::from_static(b"CLIENT_ERROR bad command line format\r\n");
        };
        let old = self.items.get(*key).cloned();
        let data = match (req.verb(), old) {
            ("add", Some(_)) | ("replace" | "append" | "prepend", None) => {
                return Bytes::from_static(b"NOT_STORED\r\n");
            }
            ("cas", None) => return Bytes::from_static(b"NOT_FOUND\r\n"),
            ("cas", Some(old)) if args.get(4).and_then(|c| c.parse().ok()) != Some(old.cas) => {
                return Bytes::from_static(b"EXISTS\r\n");
            }
            ("append", Some(old)) => [old.data, data].concat().into(),
            ("prepend", Some(old)) => [data, old.data].concat().into(),
            _ => data,
        };
        self.next_cas += 1;
        self.items.insert((*key).to_owned(), Stored { data, flags, cas: self.next_cas });
        Bytes::from_static(b"STORED\r\n")
    }

    fn delete(&mut self, args: &[&str]) -> Bytes {
        match args.first().and_then(|k| self.items.remove(*k)) {
            Some(_) => Bytes::from_static(b"DELETED\r\n"),
            None => Bytes::from_static(b"NOT_FOUND\r\n"),
        }
    }

    fn keyed(&self, args: &[&str], found: &'static str) -> Bytes {
        match args.first().is_some_and(|k| self.items.contains_key(*k)) {
            true => Bytes::from_static(found.as_bytes()),
            false => Bytes::from_static(b"NOT_FOUND\r\n"),
        }
    }

    fn arith(&mut self, incr: bool, args: &[&str]) -> Bytes {
        let (Some(key), Some(delta)) = (args.first(), args.get(1).and_then(|d| d.parse::<u64>().ok())) else {
            return Bytes::from_static(b"CLIENT_ERROR invalid numeric delta argument\r\n");
        };
        let Some(item) = self.items.get_mut(*key) else { return Bytes::from_static(b"NOT_FOUND\r\n") };
        let Some(n) = std::str::from_utf8(&item.data).ok().and_then(|s| s.parse::<u64>().ok()) else {
            return Bytes::from_static(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
        };
        let n = if incr { n.wrapping_add(delta) } else { n.saturating_sub(delta) };
        item.data = Bytes::from(n.to_string());
        self.next_cas += 1;
        item.cas = self.next_cas;
        Bytes::from(format!("{n}\r\n"))
    }
}
