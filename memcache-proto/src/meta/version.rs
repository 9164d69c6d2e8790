//! Which meta flags a server understands, from the version it reports.
//!
//! The meta protocol is stable since memcached 1.6.10, and later releases added flags. An old
//! server does not always refuse a flag it does not know: 1.6.18 answers `E` and `md x` with
//! `CLIENT_ERROR`, but silently ignores `ms s` and `mg C` (see the recorded vectors), so a
//! caller would get a success that did not do what was asked. Requests using such a flag are
//! therefore checked against the server's `version` before they are sent.

use std::fmt;
use std::str::FromStr;

use super::request::MetaVerb;
use crate::Error;

/// A memcached release number, as `version` reports it (`VERSION 1.6.18`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Patch number.
    pub patch: u16,
}

impl ServerVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> ServerVersion {
        ServerVersion { major, minor, patch }
    }

    /// Parses the text of a `VERSION` reply: three dotted numbers, anything after the third
    /// (`-rc1`, ` (Ubuntu)`) ignored. `None` when it does not start that way.
    pub fn parse(text: &[u8]) -> Option<ServerVersion> {
        let mut parts = text.splitn(3, |&b| b == b'.');
        let number = |p: &[u8]| -> Option<u16> {
            let digits = p.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&p[..digits]).ok()?.parse().ok()
        };
        let major = number(parts.next()?)?;
        let minor = number(parts.next()?)?;
        let patch = number(parts.next()?)?;
        Some(ServerVersion { major, minor, patch })
    }
}

impl FromStr for ServerVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<ServerVersion, Error> {
        ServerVersion::parse(s.as_bytes()).ok_or_else(|| Error::Server(format!("unparsable version {s:?}")))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A flag newer than the meta protocol's first stable release, and the first release that
/// understands it. `ms s` and `ms N` come from the 1.6.20 release (its 1.6.21 successor fixes
/// a bug of `s` "introduced in 1.6.20"); `md x` was merged in April 2024; the other releases
/// are the first whose protocol.txt documents the flag as far as this table's author could
/// establish. A newer server than the one a flag needs is never refused.
const GATED: [(MetaVerb, u8, ServerVersion, &str); 8] = [
    (MetaVerb::Get, b'E', ServerVersion::new(1, 6, 20), "mg E (explicit new CAS)"),
    (MetaVerb::Set, b'E', ServerVersion::new(1, 6, 20), "ms E (explicit new CAS)"),
    (MetaVerb::Delete, b'E', ServerVersion::new(1, 6, 20), "md E (explicit new CAS)"),
    (MetaVerb::Arith, b'E', ServerVersion::new(1, 6, 20), "ma E (explicit new CAS)"),
    (MetaVerb::Set, b's', ServerVersion::new(1, 6, 20), "ms s (return size)"),
    (MetaVerb::Set, b'N', ServerVersion::new(1, 6, 20), "ms N (vivify on append miss)"),
    (MetaVerb::Delete, b'x', ServerVersion::new(1, 6, 27), "md x (remove the value only)"),
    (MetaVerb::Get, b'C', ServerVersion::new(1, 6, 40), "mg C (value only if the CAS differs)"),
];

/// The newest flag `letters` of `verb` need: its description and first release.
pub(crate) fn required<'a>(
    verb: MetaVerb,
    letters: impl Iterator<Item = &'a u8>,
) -> Option<(&'static str, ServerVersion)> {
    let mut need: Option<(&'static str, ServerVersion)> = None;
    for letter in letters {
        for (v, l, version, what) in GATED {
            if v == verb && l == *letter && need.is_none_or(|(_, n)| version > n) {
                need = Some((what, version));
            }
        }
    }
    need
}

/// `Ok` when `server` understands the flags, else [`Error::Unsupported`] naming the flag.
pub(crate) fn check(need: Option<(&'static str, ServerVersion)>, server: ServerVersion) -> Result<(), Error> {
    match need {
        Some((what, version)) if server < version => Err(Error::Unsupported {
            what: what.to_owned(),
            needs: version.to_string(),
            server: server.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = ServerVersion::parse(b"1.6.18").expect("plain");
        assert_eq!(v, ServerVersion::new(1, 6, 18));
        assert_eq!(ServerVersion::parse(b"1.6.21-rc1"), Some(ServerVersion::new(1, 6, 21)));
        assert_eq!(ServerVersion::parse(b"1.6"), None);
        assert_eq!(ServerVersion::parse(b"x.6.1"), None);
        assert!(ServerVersion::new(1, 6, 9) < ServerVersion::new(1, 6, 18));
        assert_eq!(v.to_string(), "1.6.18");
    }

    #[test]
    fn gates_new_flags() {
        let old = ServerVersion::new(1, 6, 18);
        let need = required(MetaVerb::Delete, [b'I', b'x'].iter());
        let err = check(need, old).expect_err("1.6.18 has no md x");
        assert!(err.to_string().contains("md x"), "{err}");
        assert!(err.to_string().contains("1.6.18"), "{err}");
        assert!(check(need, ServerVersion::new(1, 6, 40)).is_ok());
        assert!(check(required(MetaVerb::Get, [b'v', b'c'].iter()), old).is_ok());
        assert_eq!(required(MetaVerb::Get, [b's'].iter()), None, "mg s is old; only ms s is new");
    }
}
