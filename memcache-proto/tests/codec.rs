//! Codecs: round trips, flags checked before decoding, and interop with pymemcache's flags.
//!
//! pymemcache's default serde (`pymemcache/serde.py`) stores `bytes` as-is with flags 0, a
//! `str` as its UTF-8 bytes with `FLAG_TEXT = 1 << 4`, an `int` as `"%d" % value` with
//! `FLAG_INTEGER = 1 << 1` (Python 2 `long`: `FLAG_LONG = 1 << 2`), and pickles anything else
//! (`FLAG_PICKLE = 1 << 0`). The literals below are exactly those encodings, so these tests
//! check both directions without running Python. Compression interop is in
//! `codec_compressed.rs`.

use bytes::Bytes;
use memcache_proto::codec::{Codec, CodecError, Integer, Raw, Text, flags};
use memcache_proto::{Error, Item};
use proptest::prelude::*;

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn is_mismatch<T: std::fmt::Debug>(r: Result<T, CodecError>, codec: &str, stored: u32) -> bool {
    matches!(r, Err(CodecError::FlagsMismatch { codec: c, flags }) if c == codec && flags == stored)
}

#[test]
fn pymemcache_flag_values() {
    assert_eq!(
        [flags::BYTES, flags::PICKLE, flags::INTEGER, flags::LONG, flags::ZLIB, flags::TEXT],
        [0, 1, 2, 4, 8, 16]
    );
    // Our own bits are outside every bit pymemcache, spymemcached or php-memcached write (0-15).
    for own in [flags::JSON, flags::POSTCARD, flags::LZ4] {
        assert_eq!(own & 0xffff, 0, "{own:#x}");
    }
}

#[test]
fn text_written_as_pymemcache_writes_str() {
    let e = Text::default().encode(&"café ☕".to_string()).expect("encode");
    assert_eq!(e.value, Bytes::from("café ☕".as_bytes()));
    assert_eq!(e.flags, 16);
}

#[test]
fn text_read_as_pymemcache_wrote_it() {
    // client.set("k", "café") in pymemcache stores b"caf\xc3\xa9" with flags 16.
    let s: String = Text::default().decode(b(b"caf\xc3\xa9"), 16).expect("decode");
    assert_eq!(s, "café");
}

#[test]
fn integer_written_as_pymemcache_writes_int() {
    for (n, text) in [(42i64, &b"42"[..]), (-7, b"-7"), (0, b"0"), (i64::MAX, b"9223372036854775807")] {
        let e = Integer::default().encode(&n).expect("encode");
        assert_eq!((&e.value[..], e.flags), (text, 2));
    }
    let e = Integer::default().encode(&u64::MAX).expect("encode");
    assert_eq!((&e.value[..], e.flags), (&b"18446744073709551615"[..], 2));
}

#[test]
fn integer_read_as_pymemcache_and_memcached_wrote_it() {
    let int = Integer::default();
    assert_eq!(Codec::<i64>::decode(&int, b(b"42"), flags::INTEGER).ok(), Some(42));
    assert_eq!(Codec::<i64>::decode(&int, b(b"-12"), flags::INTEGER).ok(), Some(-12));
    // Python 2's long.
    assert_eq!(Codec::<u64>::decode(&int, b(b"123456789012"), flags::LONG).ok(), Some(123456789012));
    // memcached's `decr` from 10 to 9 rewrites the value in place as "9 " (space padded).
    assert_eq!(Codec::<u32>::decode(&int, b(b"9 "), flags::INTEGER).ok(), Some(9));
    // A Python int too large for the Rust type is an error, not a wrapped value.
    let big = Codec::<i64>::decode(&int, b(b"99999999999999999999"), flags::INTEGER);
    assert!(matches!(big, Err(CodecError::Decode(_))), "{big:?}");
    let junk = Codec::<i64>::decode(&int, b(b"4x2"), flags::INTEGER);
    assert!(matches!(junk, Err(CodecError::Decode(_))), "{junk:?}");
}

#[test]
fn raw_is_pymemcache_bytes() {
    let e = Raw::default().encode(&b(b"\x00\xffbin")).expect("encode");
    assert_eq!((&e.value[..], e.flags), (&b"\x00\xffbin"[..], 0));
    assert_eq!(Raw::default().decode(b(b"abc"), 0).ok(), Some(b(b"abc")));
    assert!(is_mismatch(Raw::default().decode(b(b"abc"), flags::TEXT), "raw", 16));
}

#[test]
fn each_codec_refuses_the_others_flags() {
    // A pickled Python object: no codec here may touch it.
    for f in [flags::PICKLE, flags::PICKLE | flags::ZLIB] {
        assert!(is_mismatch(Codec::<String>::decode(&Text::default(), b(b"\x80\x04K*."), f), "text", f));
        assert!(is_mismatch(Codec::<i64>::decode(&Integer::default(), b(b"\x80\x04K*."), f), "integer", f));
        assert!(is_mismatch(Raw::default().decode(b(b"\x80\x04K*."), f), "raw", f));
    }
    // "42" stored as an int is not text, and text is not an int, whatever the bytes say.
    assert!(is_mismatch(Codec::<String>::decode(&Text::default(), b(b"42"), 2), "text", 2));
    assert!(is_mismatch(Codec::<i64>::decode(&Integer::default(), b(b"42"), 16), "integer", 16));
    // A raw value (flags 0) is not text unless the codec is told so.
    assert!(is_mismatch(Codec::<String>::decode(&Text::default(), b(b"hi"), 0), "text", 0));
    assert_eq!(Text::with_flags(0).decode(b(b"hi"), 0).ok(), Some("hi".to_string()));
}

#[test]
fn invalid_utf8_under_the_text_flag_is_a_decode_error() {
    let r = Text::default().decode(b(b"\xff\xfe"), flags::TEXT);
    assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
}

#[test]
fn configured_flags_are_written_and_required() {
    let text = Text::with_flags(0x100);
    let e = text.encode(&"x".to_string()).expect("encode");
    assert_eq!(e.flags, 0x100);
    assert_eq!(text.decode(e.value.clone(), e.flags).ok(), Some("x".to_string()));
    assert!(is_mismatch(text.decode(e.value, flags::TEXT), "text", 16));
    // A configured integer codec no longer reads Python 2's long flag.
    let int = Integer::with_flags(0x200);
    assert!(is_mismatch(Codec::<i64>::decode(&int, b(b"1"), flags::LONG), "integer", 4));
}

#[test]
fn codec_error_is_resumable_and_says_who_stored_it() {
    let err: Error = Raw::default().decode(b(b"x"), 16).expect_err("mismatch").into();
    assert!(matches!(err, Error::Codec(CodecError::FlagsMismatch { .. })));
    assert!(!err.is_connection_broken());
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("stored by another client or codec"), "{err}");
}

#[test]
fn decode_item_reads_value_and_flags() {
    let item = Item::new("k", "17").with_flags(flags::INTEGER);
    assert_eq!(Codec::<i32>::decode_item(&Integer::default(), &item).ok(), Some(17));
    let by_ref: &dyn Codec<i32> = &Integer::default();
    assert_eq!(by_ref.decode_item(&item).ok(), Some(17));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_and_integers_round_trip(s in ".*", n in any::<i64>(), u in any::<u128>()) {
        let e = Text::default().encode(&s).expect("encode");
        prop_assert_eq!(Text::default().decode(e.value, e.flags).ok(), Some(s));
        let e = Integer::default().encode(&n).expect("encode");
        prop_assert_eq!(Codec::<i64>::decode(&Integer::default(), e.value, e.flags).ok(), Some(n));
        let e = Integer::default().encode(&u).expect("encode");
        prop_assert_eq!(Codec::<u128>::decode(&Integer::default(), e.value, e.flags).ok(), Some(u));
    }

    /// Whatever another client stored, decoding returns (never panics), and it refuses every
    /// value whose flags are not its own.
    #[test]
    fn any_stored_value_decodes_or_errs(data in proptest::collection::vec(any::<u8>(), 0..64), f in any::<u32>()) {
        let data = Bytes::from(data);
        let text = Text::default().decode(data.clone(), f);
        prop_assert!(f == flags::TEXT || text.is_err());
        let int = Codec::<i64>::decode(&Integer::default(), data.clone(), f);
        prop_assert!(f == flags::INTEGER || f == flags::LONG || int.is_err());
        let raw = Raw::default().decode(data, f);
        prop_assert!(f == 0 || raw.is_err());
    }
}

#[cfg(feature = "json")]
mod json {
    use super::*;
    use memcache_proto::codec::Json;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn user() -> User {
        User { id: 7, name: "Ada".into(), tags: vec!["admin".into(), "ops".into()] }
    }

    #[test]
    fn json_round_trips_on_its_own_bit() {
        let e = Json::default().encode(&user()).expect("encode");
        assert_eq!(e.flags, flags::JSON);
        assert_eq!(&e.value[..], br#"{"id":7,"name":"Ada","tags":["admin","ops"]}"#);
        assert_eq!(Json::default().decode(e.value, e.flags).ok(), Some(user()));
    }

    #[test]
    fn raw_value_read_as_json_is_a_flag_mismatch() {
        // Even bytes that happen to be valid JSON: the flags decide, not the bytes.
        let r: Result<User, _> = Json::default().decode(b(br#"{"id":1,"name":"x","tags":[]}"#), 0);
        assert!(is_mismatch(r, "json", 0));
    }

    #[test]
    fn malformed_json_under_the_json_flag_is_a_decode_error() {
        let r: Result<User, _> = Json::default().decode(b(b"{\"id\":"), flags::JSON);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
        let r: Result<User, _> = Json::default().decode(b(b"[1,2]"), flags::JSON);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
    }

    #[test]
    fn unencodable_value_is_an_encode_error() {
        // JSON object keys must be strings.
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let r = Json::default().encode(&map);
        assert!(matches!(r, Err(CodecError::Encode(_))), "{r:?}");
    }
}

#[cfg(feature = "postcard")]
mod postcard {
    use super::*;
    use memcache_proto::codec::Postcard;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        y: i32,
        label: Option<String>,
    }

    #[test]
    fn postcard_round_trips_on_its_own_bit() {
        let p = Point { x: -3, y: 300, label: Some("here".into()) };
        let e = Postcard::default().encode(&p).expect("encode");
        assert_eq!(e.flags, flags::POSTCARD);
        // zigzag varints: -3 -> 5, 300 -> 600 = [0xd8, 0x04]; Some -> 1, then len-prefixed str.
        assert_eq!(&e.value[..], b"\x05\xd8\x04\x01\x04here");
        assert_eq!(Postcard::default().decode(e.value, e.flags).ok(), Some(p));
    }

    #[test]
    fn trailing_or_missing_bytes_are_decode_errors() {
        let r: Result<Point, _> = Postcard::default().decode(b(b"\x05\xd8\x04\x00\x00"), flags::POSTCARD);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
        let r: Result<Point, _> = Postcard::default().decode(b(b"\x05"), flags::POSTCARD);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
    }

    #[test]
    fn json_value_read_as_postcard_is_a_flag_mismatch() {
        let r: Result<Point, _> = Postcard::default().decode(b(b"{}"), flags::JSON);
        assert!(is_mismatch(r, "postcard", flags::JSON));
    }
}
