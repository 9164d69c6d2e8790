//! The `meta*` groups: every case decodes whole, byte by byte and split at every offset; a
//! request that typed builders can express is rebuilt from them byte for byte, and its replies
//! are read through `Connection` and the operations.

use std::collections::BTreeSet;

use bytes::BytesMut;
use memcache_proto::meta::{
    ArithOutcome, DeleteOutcome, GetOutcome, Lease, Meta, MetaArith, MetaDelete, MetaGet, MetaOutcome,
    MetaRequest, MetaSet, Opaque, ServerVersion, SetMode, SetOutcome,
};
use memcache_proto::op::Op;
use memcache_proto::{Command, Decoder, Limits, ReplyKind, Response};

use crate::data::Case;
use crate::decode::decode_every_way;
use crate::meaning::text;

/// Decodes `resp` followed by the sentinel's `MN` as one batch reply, every way of splitting
/// it; returns the frames (which must re-encode to exactly the recorded bytes). The answer to
/// a lone `mn` is read as one frame instead (its `MN` would end the batch).
fn batch_frames(resp: &[u8], lone_mn: bool) -> Vec<Response> {
    let mut all = resp.to_vec();
    let kind = if lone_mn { ReplyKind::Meta } else { ReplyKind::MetaBatch };
    if !lone_mn {
        all.extend_from_slice(b"MN\r\n");
    }
    let decode = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut dec = Decoder::new(Limits::DEFAULT);
        let mut buf = BytesMut::new();
        let mut out = None;
        for chunk in chunks.filter(|c| !c.is_empty()) {
            assert!(out.is_none(), "reply complete before its end");
            buf.extend_from_slice(chunk);
            out = dec.decode(kind, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(buf.is_empty(), "nothing left over");
        out.expect("complete")
    };
    let whole = decode(&mut std::iter::once(&all[..]));
    assert_eq!(decode(&mut all.chunks(1)), whole, "byte by byte");
    for at in 0..=all.len() {
        assert_eq!(decode(&mut [&all[..at], &all[at..]].into_iter()), whole, "split at {at}");
    }
    let frames = match whole {
        Response::MetaBatch(frames) => frames,
        mn @ Response::Meta(_) if lone_mn => vec![mn],
        other => panic!("not a batch: {other:?}"),
    };
    let mut again = BytesMut::new();
    for f in &frames {
        f.encode(&mut again);
    }
    assert_eq!(text(&again), text(resp), "frames re-encode to the recorded reply");
    frames
}

/// One command line of a request: verb, key, data block, flag tokens.
struct Line<'a> {
    verb: &'a [u8],
    key: &'a [u8],
    data: Option<&'a [u8]>,
    flags: Vec<&'a [u8]>,
}

/// Splits a request into meta command lines; `None` if it is not made of meta commands.
fn lines(req: &[u8]) -> Option<Vec<Line<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < req.len() {
        let nl = pos + req[pos..].windows(2).position(|w| w == b"\r\n")?;
        let mut tokens = req[pos..nl].split(|&b| b == b' ');
        pos = nl + 2;
        let verb = tokens.next()?;
        let key = tokens.next()?;
        let mut flags: Vec<&[u8]> = tokens.collect();
        let data = if verb == b"ms" {
            let len: usize = std::str::from_utf8(flags.first()?).ok()?.parse().ok()?;
            flags.remove(0);
            let block = req.get(pos..pos + len + 2)?;
            if &block[len..] != b"\r\n" {
                return None;
            }
            pos += len + 2;
            Some(&block[..len])
        } else {
            None
        };
        if flags.iter().any(|f| f.is_empty()) || !matches!(verb, b"mg" | b"ms" | b"md" | b"ma" | b"me") {
            return None;
        }
        out.push(Line { verb, key, data, flags });
    }
    (!out.is_empty()).then_some(out)
}

fn num<T: std::str::FromStr>(tok: &[u8]) -> Option<T> {
    let s = std::str::from_utf8(tok).ok()?;
    // Only canonical spellings: the builder cannot reproduce `007` or `+1`.
    if s.is_empty() || s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Rebuilds one line with the typed builders, calling one method per flag in the line's
/// order; `None` when some flag has no builder method (quiet `q`, proxy hints, aliases).
fn build(line: &Line<'_>) -> Option<MetaRequest> {
    let (first, rest) = line.flags.split_first().map_or((None, &[][..]), |(f, r)| (Some(*f), r));
    let base64 = first == Some(b"b");
    let flags = if base64 { rest } else { &line.flags[..] };
    // A flag given twice (which memcached refuses) cannot be built: setting it again replaces it.
    let letters: BTreeSet<u8> = flags.iter().map(|f| f[0]).collect();
    if flags.contains(&&b"b"[..]) || letters.len() != flags.len() {
        return None;
    }
    let key = if base64 { decode_b64(line.key)? } else { line.key.to_vec() };
    let mut it = flags.iter().map(|f| (f[0], &f[1..])).peekable();
    let request: MetaRequest = match line.verb {
        b"mg" => {
            let mut g = MetaGet::new(&key).ok()?.meta_only();
            if base64 {
                g = g.base64_key().ok()?;
            }
            for (l, t) in it {
                g = match (l, t) {
                    (b'v', b"") => g.value(),
                    (b'c', b"") => g.cas(),
                    (b'f', b"") => g.flags(),
                    (b't', b"") => g.ttl(),
                    (b'u', b"") => g.no_bump(),
                    (b'h', b"") => g.hit_before(),
                    (b'l', b"") => g.last_access(),
                    (b's', b"") => g.size(),
                    (b'k', b"") => g.return_key(),
                    (b'O', t) => g.opaque(Opaque::new(t).ok()?),
                    (b'T', t) => g.touch(num(t)?),
                    (b'N', t) => g.lease(num(t)?),
                    (b'R', t) => g.recache_below(num(t)?),
                    (b'C', t) => g.if_changed(num(t)?),
                    (b'E', t) => g.new_cas(num(t)?),
                    _ => return None,
                };
            }
            g.into()
        }
        b"ms" => {
            let mut s = MetaSet::new(&key, line.data?.to_vec()).ok()?;
            if base64 {
                s = s.base64_key().ok()?;
            }
            for (l, t) in it {
                s = match (l, t) {
                    (b'F', t) => s.flags(num(t)?),
                    (b'T', t) => s.exptime(num(t)?),
                    (b'C', t) => s.cas(num(t)?),
                    (b'E', t) => s.new_cas(num(t)?),
                    (b'N', t) => s.vivify_on_miss(num(t)?),
                    (b'O', t) => s.opaque(Opaque::new(t).ok()?),
                    (b'I', b"") => s.invalidate(),
                    (b'c', b"") => s.return_cas(),
                    (b'k', b"") => s.return_key(),
                    (b's', b"") => s.return_size(),
                    (b'M', b"S") => s.mode(SetMode::Set),
                    (b'M', b"E") => s.mode(SetMode::Add),
                    (b'M', b"R") => s.mode(SetMode::Replace),
                    (b'M', b"A") => s.mode(SetMode::Append),
                    (b'M', b"P") => s.mode(SetMode::Prepend),
                    _ => return None,
                };
            }
            s.into()
        }
        b"md" => {
            let mut d = MetaDelete::new(&key).ok()?;
            if base64 {
                d = d.base64_key().ok()?;
            }
            while let Some((l, t)) = it.next() {
                d = match (l, t) {
                    (b'C', t) => d.cas(num(t)?),
                    (b'E', t) => d.new_cas(num(t)?),
                    (b'O', t) => d.opaque(Opaque::new(t).ok()?),
                    (b'k', b"") => d.return_key(),
                    (b'x', b"") => d.remove_value(),
                    (b'I', b"") => match it.next() {
                        Some((b'T', t)) => d.mark_stale(num(t)?),
                        _ => return None,
                    },
                    _ => return None,
                };
            }
            d.into()
        }
        b"ma" => {
            let mut a = MetaArith::new(&key).ok()?.meta_only();
            if base64 {
                a = a.base64_key().ok()?;
            }
            while let Some((l, t)) = it.next() {
                a = match (l, t) {
                    (b'D', t) => a.delta(num(t)?),
                    (b'M', b"D") => a.decr(),
                    (b'M', b"I") => a.incr(),
                    (b'T', t) => a.exptime(num(t)?),
                    (b'C', t) => a.cas(num(t)?),
                    (b'E', t) => a.new_cas(num(t)?),
                    (b'O', t) => a.opaque(Opaque::new(t).ok()?),
                    (b'c', b"") => a.return_cas(),
                    (b't', b"") => a.ttl(),
                    (b'v', b"") => a.value(),
                    (b'k', b"") => a.return_key(),
                    (b'N', ttl) => match it.next() {
                        Some((b'J', init)) => a.autovivify(num(init)?, num(ttl)?),
                        _ => return None,
                    },
                    _ => return None,
                };
            }
            a.into()
        }
        b"me" if flags.is_empty() && !base64 => MetaRequest::debug(&key).ok()?,
        _ => return None,
    };
    Some(request)
}

fn decode_b64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Cases a builder must reproduce (a parser or builder that got stricter would drop them).
const MUST_BUILD: [&str; 16] = [
    "ms_return_cas_key_opaque",
    "ms_opaque_key_order",
    "ms_mode_add_existing",
    "ms_cas_match",
    "ms_invalidate_older_cas",
    "ms_base64_key",
    "mg_all_return_flags",
    "mg_flag_order_follows_request",
    "mg_N_vivify_miss",
    "mg_R_recache_win",
    "mg_base64_hit",
    "md_invalidate",
    "md_k_opaque",
    "ma_autovivify_initial",
    "ma_t_c_k_opaque",
    "ma_base64_autoviv",
];

/// Cases whose request uses a flag newer than 1.6.18: the builder must refuse them for it.
const GATED: [&str; 8] = [
    "ms_s_flag",
    "ms_E_flag",
    "ms_append_N_autoviv",
    "mg_E_flag",
    "mg_C_flag_ignored",
    "md_x_flag",
    "md_E_flag",
    "ma_E_flag",
];

/// Requests the server refused that the builders refuse to build too.
const REFUSED: [&str; 8] = [
    "ms_opaque_33_bytes",
    "mg_opaque_33_bytes",
    "mg_opaque_33_bytes_miss",
    "ms_key_251",
    "mg_key_251",
    "md_key_251",
    "ma_key_251",
    "ms_client_flags_truncated",
];

/// Recorded quiet (`q`) requests, rebuilt without `q`: whether a batch may make them quiet.
/// `ma .. v q` lost its value (empty reply), so it must stay loud; the others lose nothing.
const QUIET: [(&str, bool); 13] = [
    ("mg_q_hit_with_value", true),
    ("mg_q_hit_no_value", true),
    ("mg_q_miss", true),
    ("mg_q_miss_k_O", true),
    ("ms_quiet_success", true),
    ("ms_quiet_failure_shown", true),
    ("md_quiet_hit", true),
    ("md_quiet_miss_shown", true),
    ("md_quiet_cas_mismatch_shown", true),
    ("ma_miss_quiet_shown", true),
    ("ma_quiet_success", true),
    ("ma_quiet_value_suppressed", false),
    ("ma_quiet_autovivify_shown", false),
];

fn check_quiet(cases: &[&Case]) {
    for (name, quiet) in QUIET {
        let case = cases.iter().find(|c| c.name == name).expect("case exists");
        let mut ls = lines(&case.request).expect("meta request");
        let last = ls.last_mut().expect("a line");
        assert!(last.flags.contains(&&b"q"[..]), "{name} is quiet");
        last.flags.retain(|f| f != b"q");
        let request = build(last).unwrap_or_else(|| panic!("{name} builds without q"));
        assert_eq!(request.quiet_in_batch(), quiet, "{name}");
    }
}

fn outcomes(requests: &[MetaRequest], frames: &[Response]) -> Vec<Result<MetaOutcome, String>> {
    requests
        .iter()
        .zip(frames)
        .map(|(r, f)| Meta::any(r.clone()).finish(f.clone()).map_err(|e| e.to_string()))
        .collect()
}

fn check_named(name: &str, out: &[Result<MetaOutcome, String>]) {
    let hit = |o: &Result<MetaOutcome, String>| match o {
        Ok(MetaOutcome::Get(GetOutcome::Hit(item))) => item.clone(),
        other => panic!("{name}: not a hit: {other:?}"),
    };
    match name {
        "ms_return_cas_key_opaque" => {
            assert_eq!(out[0], Ok(MetaOutcome::Set(SetOutcome::Stored { cas: Some(50) })))
        }
        "ms_mode_add_existing" => assert_eq!(out[0], Ok(MetaOutcome::Set(SetOutcome::NotStored))),
        "ms_cas_mismatch" => assert_eq!(out[0], Ok(MetaOutcome::Set(SetOutcome::Exists))),
        "ms_cas_missing_key" => assert_eq!(out[0], Ok(MetaOutcome::Set(SetOutcome::NotFound))),
        "mg_miss" | "mg_miss_with_k_and_opaque" => assert_eq!(out[0], Ok(MetaOutcome::Get(GetOutcome::Miss))),
        "mg_all_return_flags" => {
            let item = hit(&out[0]);
            assert_eq!(&item.value[..], b"hello");
            assert_eq!(
                (item.flags, item.cas, item.size, &item.key[..]),
                (Some(30), Some(49), Some(5), &b"mflag"[..])
            );
            assert!(item.ttl.is_some_and(|t| t > 3000));
        }
        "mg_h_l_first_access" => {
            let item = hit(&out[1]);
            assert_eq!((item.hit_before, item.last_access), (Some(false), Some(0)));
        }
        "mg_t_no_expiry" => assert_eq!(hit(&out[0]).ttl, Some(-1)),
        "mg_N_vivify_miss" => {
            let item = hit(&out[0]);
            assert_eq!((item.lease, item.cas, item.value.len()), (Lease::Won, Some(70), 0));
        }
        "mg_N_vivify_second" => assert_eq!(hit(&out[0]).lease, Lease::Held),
        "mg_after_invalidating_set" | "mg_stale_first_wins" => {
            let item = hit(&out[0]);
            assert!(item.stale && item.lease == Lease::Won, "{item:?}");
            assert_eq!(&item.value[..], b"old");
        }
        "mg_stale_second_sees_Z" => assert_eq!(hit(&out[0]).lease, Lease::Held),
        "mg_base64_hit" => assert_eq!(&hit(&out[0]).key[..], b"foobar"),
        "md_hit" | "md_k_opaque" => assert_eq!(out[0], Ok(MetaOutcome::Delete(DeleteOutcome::Deleted))),
        "md_miss" => assert_eq!(out[0], Ok(MetaOutcome::Delete(DeleteOutcome::NotFound))),
        "md_cas_mismatch" => assert_eq!(out[0], Ok(MetaOutcome::Delete(DeleteOutcome::Exists))),
        "ma_autovivify_initial" => assert_eq!(
            out[0],
            Ok(MetaOutcome::Arith(ArithOutcome::Updated { value: Some(10), cas: None, ttl: None }))
        ),
        "ma_t_c_k_opaque" => assert_eq!(
            out[0],
            Ok(MetaOutcome::Arith(ArithOutcome::Updated { value: None, cas: Some(92), ttl: Some(-1) }))
        ),
        "ma_miss" => assert_eq!(out[0], Ok(MetaOutcome::Arith(ArithOutcome::NotFound))),
        "ma_non_numeric" => assert!(out[0].as_ref().is_err_and(|e| e.contains("non-numeric")), "{out:?}"),
        "me_hit" => {
            assert!(matches!(&out[0], Ok(MetaOutcome::Debug(Some(d))) if d.starts_with(b"exp=")), "{out:?}")
        }
        "me_miss" => assert_eq!(out[0], Ok(MetaOutcome::Debug(None))),
        _ => {}
    }
}

/// Checks every `meta*` case; returns the names rebuilt from builders.
pub(crate) fn check_meta_cases(cases: &[Case], classic_checked: &BTreeSet<String>) -> BTreeSet<String> {
    let meta: Vec<&Case> = cases.iter().filter(|c| c.group.starts_with("meta")).collect();
    assert_eq!(meta.len(), 146, "the recorded meta cases");
    let old = ServerVersion::new(1, 6, 18);
    let mut built = BTreeSet::new();
    for &case in &meta {
        if classic_checked.contains(&case.name) {
            continue; // a classic command in a meta group (`get` of a base64-stored key)
        }
        assert_eq!(case.framing, "sentinel", "{}", case.name);
        let frames = batch_frames(&case.response, case.request.starts_with(b"mn"));
        let Some(requests) =
            lines(&case.request).and_then(|ls| ls.iter().map(build).collect::<Option<Vec<_>>>())
        else {
            continue;
        };
        let mut encoded = BytesMut::new();
        for r in &requests {
            r.encode(&mut encoded);
        }
        assert_eq!(text(&encoded), text(&case.request), "{}: rebuilt from builders", case.name);
        let gated = requests.iter().any(|r| r.check_version(old).is_err());
        assert_eq!(gated, GATED.contains(&case.name.as_str()), "{}: version gate", case.name);
        if !gated {
            let commands: Vec<Command> = requests.iter().cloned().map(Command::Meta).collect();
            assert_eq!(decode_every_way(&commands, &case.response), frames, "{}", case.name);
            check_named(&case.name, &outcomes(&requests, &frames));
        }
        built.insert(case.name.clone());
    }
    for name in MUST_BUILD.iter().chain(&GATED) {
        assert!(built.contains(*name), "{name} must be rebuilt from builders");
    }
    check_quiet(&meta);
    for name in REFUSED {
        assert!(!built.contains(name), "{name} was refused by the server, the builders must refuse it");
    }
    built
}
