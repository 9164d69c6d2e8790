//! `Compressed<C>`: the threshold, keeping only a smaller form, bounded decompression (no
//! zip bomb), garbage refused without a panic, and zlib interop with pymemcache.
#![cfg(any(feature = "zlib", feature = "lz4"))]

use bytes::Bytes;
use memcache_proto::Limits;
use memcache_proto::codec::{Codec, CodecError, Compressed, Raw, Text, flags};
use proptest::prelude::*;

/// Compressible text of exactly `n` bytes.
fn text(n: usize) -> String {
    "memcached flags tag the bytes; ".chars().cycle().take(n).collect()
}

/// `n` bytes no compressor can shrink (a xorshift stream).
fn noise(n: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Bytes::from(v)
}

fn small_limit() -> Limits {
    Limits::DEFAULT.with_max_value_len(1 << 20)
}

/// The behaviour every algorithm shares, run once per algorithm below.
fn threshold_and_size_rules(make: fn(Text) -> Compressed<Text>, bit: u32) {
    let codec = make(Text::default());
    // Just below the threshold: stored as plain text, readable by a reader without the wrapper.
    let below = codec.encode(&text(399)).expect("encode");
    assert_eq!((below.flags, below.value.len()), (flags::TEXT, 399));
    assert_eq!(Text::default().decode(below.value.clone(), below.flags).ok(), Some(text(399)));
    // At and just above: compressed, tagged with the wrapper's bit, smaller, and round-trips.
    for n in [400, 401, 4000] {
        let e = codec.encode(&text(n)).expect("encode");
        assert_eq!(e.flags, flags::TEXT | bit, "{n} bytes");
        assert!(e.value.len() < n, "{n} bytes compressed to {}", e.value.len());
        assert_eq!(codec.decode(e.value, e.flags).ok(), Some(text(n)));
    }
    // Plain values read through the wrapper too.
    assert_eq!(codec.decode(below.value, below.flags).ok(), Some(text(399)));
    // A compressed value read without the wrapper is refused, not returned as garbage text.
    let packed = codec.encode(&text(1000)).expect("encode");
    let r = Text::default().decode(packed.value, packed.flags);
    assert!(matches!(r, Err(CodecError::FlagsMismatch { .. })), "{r:?}");
}

fn incompressible_stays_plain(make: fn(Raw) -> Compressed<Raw>) {
    let data = noise(5000);
    let e = make(Raw::default()).encode(&data).expect("encode");
    assert_eq!((e.flags, &e.value), (0, &data));
    assert_eq!(make(Raw::default()).decode(e.value, e.flags).ok(), Some(data));
}

fn threshold_is_configurable(make: fn(Raw) -> Compressed<Raw>, bit: u32) {
    let codec = make(Raw::default()).with_threshold(10);
    let e = codec.encode(&Bytes::from(vec![b'a'; 64])).expect("encode");
    assert_eq!(e.flags, bit);
    let e = make(Raw::default()).with_threshold(usize::MAX).encode(&Bytes::from(vec![b'a'; 64 * 1024]));
    assert_eq!(e.expect("encode").flags, 0);
}

fn garbage_is_an_error_not_a_panic(make: fn(Raw) -> Compressed<Raw>, bit: u32) {
    let codec = make(Raw::default());
    for junk in [&b""[..], b"\x00", b"not compressed at all", b"\x78\x9c\xff\xff\xff\xff"] {
        let r = codec.decode(Bytes::copy_from_slice(junk), bit);
        assert!(r.is_err(), "{junk:?} gave {r:?}");
    }
    // A valid stream cut short.
    let e = codec.encode(&Bytes::from(text(2000))).expect("encode");
    assert_eq!(e.flags, bit);
    let cut = e.value.slice(..e.value.len() / 2);
    assert!(codec.decode(cut, bit).is_err());
}

fn mismatch_is_found_before_decompressing(make: fn(Text) -> Compressed<Text>, bit: u32) {
    // Flags of a pickled, compressed Python object: refused without inflating anything.
    let r = make(Text::default()).decode(Bytes::from_static(b"junk"), flags::PICKLE | bit);
    assert!(matches!(r, Err(CodecError::FlagsMismatch { codec: "text", .. })), "{r:?}");
}

fn overlapping_flags_are_refused(make: fn(Text) -> Compressed<Text>) {
    let codec = make(Text::default()).with_flag(flags::TEXT);
    let r = codec.encode(&text(1000));
    assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
}

#[cfg(feature = "zlib")]
mod zlib {
    use super::*;

    fn text_codec(c: Text) -> Compressed<Text> {
        Compressed::zlib(c)
    }
    fn raw_codec(c: Raw) -> Compressed<Raw> {
        Compressed::zlib(c)
    }

    /// zlib's Adler-32, written out so the check does not trust the library under test.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn threshold_and_size() {
        threshold_and_size_rules(text_codec, flags::ZLIB);
    }

    #[test]
    fn incompressible() {
        incompressible_stays_plain(raw_codec);
    }

    #[test]
    fn configurable_threshold() {
        threshold_is_configurable(raw_codec, flags::ZLIB);
    }

    #[test]
    fn garbage() {
        garbage_is_an_error_not_a_panic(raw_codec, flags::ZLIB);
    }

    #[test]
    fn mismatch_first() {
        mismatch_is_found_before_decompressing(text_codec, flags::ZLIB);
    }

    #[test]
    fn overlap() {
        overlapping_flags_are_refused(text_codec);
    }

    /// What CPython's `zlib.compress(("Typed values shared with Python. " * 20).encode())`
    /// returns: pymemcache's `CompressedSerde` stores it with flags `FLAG_TEXT | FLAG_COMPRESSED`.
    const FROM_PYTHON: &str =
        "789c0ba92c484d51284bcc294d2d5628ce482c02f2ca334b3214022a4b32f2f3f4144246158c2aa0af0200ed06f1f5";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn reads_what_pymemcache_compressed() {
        let stored = Bytes::from(unhex(FROM_PYTHON));
        let s = Compressed::zlib(Text::default()).decode(stored, flags::TEXT | flags::ZLIB);
        assert_eq!(s.ok(), Some("Typed values shared with Python. ".repeat(20)));
    }

    #[test]
    fn writes_what_python_zlib_decompresses() {
        // Python's zlib.decompress takes an RFC 1950 stream: a header whose first two bytes
        // are a multiple of 31 with method 8 (deflate), the deflate data, then Adler-32 of
        // the plain bytes, big endian.
        let plain = text(1000);
        let e = Compressed::zlib(Text::default()).encode(&plain).expect("encode");
        assert_eq!(e.flags, 16 | 8);
        let v = &e.value;
        assert_eq!(v[0] & 0x0f, 8, "deflate method");
        assert_eq!((u16::from(v[0]) << 8 | u16::from(v[1])) % 31, 0, "header check bits");
        assert_eq!(v[1] & 0x20, 0, "no preset dictionary");
        let trailer = u32::from_be_bytes(v[v.len() - 4..].try_into().expect("4 bytes"));
        assert_eq!(trailer, adler32(plain.as_bytes()));
    }

    #[test]
    fn decompression_bomb_is_refused() {
        // 16 MiB of zeros compresses to about 16 KiB; the limit is 1 MiB.
        let bomb = {
            use std::io::Write;
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&vec![0u8; 16 << 20]).expect("write");
            enc.finish().expect("finish")
        };
        assert!(bomb.len() < 128 * 1024, "{} bytes", bomb.len());
        let codec = Compressed::zlib(Raw::default()).with_limits(small_limit());
        let r = codec.decode(Bytes::from(bomb), flags::ZLIB);
        assert!(matches!(r, Err(CodecError::TooLarge { limit }) if limit == 1 << 20), "{r:?}");
        // Exactly at the limit is still accepted.
        let full =
            Compressed::zlib(Raw::default()).with_threshold(1).encode(&Bytes::from(vec![7u8; 1 << 20]));
        let full = full.expect("encode");
        assert_eq!(codec.decode(full.value, full.flags).map(|v| v.len()).ok(), Some(1 << 20));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..3000)) {
            let data = Bytes::from(data);
            let codec = Compressed::zlib(Raw::default());
            let e = codec.encode(&data).expect("encode");
            prop_assert!(e.value.len() <= data.len());
            prop_assert_eq!(codec.decode(e.value, e.flags).ok(), Some(data));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Compressed::zlib(Raw::default()).decode(Bytes::from(data), flags::ZLIB);
        }
    }
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::*;

    fn text_codec(c: Text) -> Compressed<Text> {
        Compressed::lz4(c)
    }
    fn raw_codec(c: Raw) -> Compressed<Raw> {
        Compressed::lz4(c)
    }

    #[test]
    fn threshold_and_size() {
        threshold_and_size_rules(text_codec, flags::LZ4);
    }

    #[test]
    fn incompressible() {
        incompressible_stays_plain(raw_codec);
    }

    #[test]
    fn configurable_threshold() {
        threshold_is_configurable(raw_codec, flags::LZ4);
    }

    #[test]
    fn garbage() {
        garbage_is_an_error_not_a_panic(raw_codec, flags::LZ4);
    }

    #[test]
    fn mismatch_first() {
        mismatch_is_found_before_decompressing(text_codec, flags::LZ4);
    }

    #[test]
    fn overlap() {
        overlapping_flags_are_refused(text_codec);
    }

    #[test]
    fn decompression_bomb_is_refused() {
        let bomb = lz4_flex::block::compress_prepend_size(&vec![0u8; 8 << 20]);
        let codec = Compressed::lz4(Raw::default()).with_limits(small_limit());
        let r = codec.decode(Bytes::from(bomb), flags::LZ4);
        assert!(matches!(r, Err(CodecError::TooLarge { limit }) if limit == 1 << 20), "{r:?}");
    }

    #[test]
    fn lying_length_prefix_is_refused_without_allocating_it() {
        // Announces 512 KiB (under the default 1 MiB limit) from 5 bytes of body.
        let mut v = (512u32 << 10).to_le_bytes().to_vec();
        v.extend_from_slice(b"\x10a\x00\x00\x00");
        let r = Compressed::lz4(Raw::default()).decode(Bytes::from(v), flags::LZ4);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
        // Announces less than the body holds.
        let mut v = lz4_flex::block::compress_prepend_size(&text(2000).into_bytes());
        v[..4].copy_from_slice(&10u32.to_le_bytes());
        let r = Compressed::lz4(Raw::default()).decode(Bytes::from(v), flags::LZ4);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..3000)) {
            let data = Bytes::from(data);
            let codec = Compressed::lz4(Raw::default());
            let e = codec.encode(&data).expect("encode");
            prop_assert!(e.value.len() <= data.len());
            prop_assert_eq!(codec.decode(e.value, e.flags).ok(), Some(data));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Compressed::lz4(Raw::default()).decode(Bytes::from(data), flags::LZ4);
        }
    }
}

#[cfg(feature = "json")]
#[test]
fn compressed_json_round_trips_and_plain_json_refuses_it() {
    use memcache_proto::codec::Json;
    let big: Vec<String> = (0..200).map(|i| format!("item-{i}")).collect();
    #[cfg(feature = "zlib")]
    let codec = Compressed::zlib(Json::default());
    #[cfg(not(feature = "zlib"))]
    let codec = Compressed::lz4(Json::default());
    let e = codec.encode(&big).expect("encode");
    assert_ne!(e.flags, flags::JSON);
    assert_eq!(e.flags & flags::JSON, flags::JSON);
    assert_eq!(codec.decode(e.value.clone(), e.flags).ok(), Some(big));
    let r: Result<Vec<String>, _> = Json::default().decode(e.value, e.flags);
    assert!(matches!(r, Err(CodecError::FlagsMismatch { .. })), "{r:?}");
}
