//! The `meta` target: quiet batches against a scripted server, and raw bytes as batch replies.

use arbitrary::{Result, Unstructured};
use bytes::{BufMut, BytesMut};
use memcache_proto::meta::{
    ArithOutcome, DeleteOutcome, GetOutcome, MetaArith, MetaBatch, MetaDelete, MetaGet, MetaOutcome,
    MetaRequest, MetaSet, MetaStatus, MetaVerb, Opaque, SetMode, SetOutcome,
};
use memcache_proto::op::Op;
use memcache_proto::{Connection, Error};

use crate::arb;

/// A request of any verb with a few flags (keys may be binary).
fn request(u: &mut Unstructured<'_>) -> Result<MetaRequest> {
    let key: Vec<u8> = if u.ratio(1u8, 4)? {
        let len = u.int_in_range(1..=20usize)?;
        u.bytes(len)?.to_vec()
    } else {
        arb::key(u)?.as_bytes().to_vec()
    };
    let Ok(key) = memcache_proto::meta::MetaKey::new(&key).map(|k| k.to_raw()) else {
        return Err(arbitrary::Error::IncorrectFormat);
    };
    let bad = |_| arbitrary::Error::IncorrectFormat;
    Ok(match u.int_in_range(0..=3u8)? {
        0 => {
            let mut g = MetaGet::new(&key).map_err(bad)?;
            if u.arbitrary()? {
                g = g.meta_only();
            }
            if u.arbitrary()? {
                g = g.cas().ttl();
            }
            if u.arbitrary()? {
                g = g.opaque(Opaque::new("user").map_err(bad)?);
            }
            g.into()
        }
        1 => {
            let len = u.int_in_range(0..=8usize)?;
            let mut s = MetaSet::new(&key, u.bytes(len)?.to_vec()).map_err(bad)?;
            if u.arbitrary()? {
                s = s.return_cas();
            }
            if u.arbitrary()? {
                s = s.mode(SetMode::Add);
            }
            s.into()
        }
        2 => MetaDelete::new(&key).map_err(bad)?.into(),
        _ => {
            let a = MetaArith::new(&key).map_err(bad)?;
            if u.arbitrary()? { a.meta_only().into() } else { a.into() }
        }
    })
}

/// What the scripted server does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Answer(MetaStatus),
    Silent,
    ErrorLines(u8),
}

fn statuses(verb: MetaVerb) -> &'static [MetaStatus] {
    use MetaStatus as S;
    match verb {
        MetaVerb::Get => &[S::Value, S::Done, S::Miss],
        MetaVerb::Set => &[S::Done, S::NotStored, S::Exists, S::NotFound],
        MetaVerb::Delete => &[S::Done, S::NotFound, S::Exists],
        _ => &[S::Value, S::Done, S::NotFound, S::NotStored, S::Exists],
    }
}

/// Renders the server's answer to request `i` (its opaque is its index).
fn render(out: &mut BytesMut, i: usize, r: &MetaRequest, act: Act, u: &mut Unstructured<'_>) -> Result<()> {
    match act {
        Act::Silent => {}
        Act::ErrorLines(n) => {
            for k in 0..=n {
                out.put_slice(if k % 2 == 0 { b"CLIENT_ERROR bad data chunk\r\n" } else { b"ERROR\r\n" });
            }
        }
        Act::Answer(status) => {
            let code: &[u8] = match status {
                MetaStatus::Value => b"VA",
                MetaStatus::Done => b"HD",
                MetaStatus::Miss => b"EN",
                MetaStatus::NotStored => b"NS",
                MetaStatus::Exists => b"EX",
                _ => b"NF",
            };
            let data = match (status, r.verb()) {
                (MetaStatus::Value, MetaVerb::Arith) => u.arbitrary::<u64>()?.to_string().into_bytes(),
                (MetaStatus::Value, _) => {
                    let len = u.int_in_range(0..=8usize)?;
                    u.bytes(len)?.to_vec()
                }
                _ => Vec::new(),
            };
            out.put_slice(code);
            if status == MetaStatus::Value {
                out.put_slice(format!(" {}", data.len()).as_bytes());
            }
            if u.arbitrary()? {
                out.put_slice(format!(" c{}", u.arbitrary::<u32>()?).as_bytes());
            }
            out.put_slice(format!(" O{i}\r\n").as_bytes());
            if status == MetaStatus::Value {
                out.put_slice(&data);
                out.put_slice(b"\r\n");
            }
        }
    }
    Ok(())
}

/// Whether `outcome` is what `status` means for `verb`.
fn means(verb: MetaVerb, status: MetaStatus, outcome: &MetaOutcome) -> bool {
    use MetaStatus as S;
    matches!(
        (verb, status, outcome),
        (MetaVerb::Get, S::Value | S::Done, MetaOutcome::Get(GetOutcome::Hit(_)))
            | (MetaVerb::Get, S::Miss, MetaOutcome::Get(GetOutcome::Miss))
            | (MetaVerb::Set, S::Done, MetaOutcome::Set(SetOutcome::Stored { .. }))
            | (MetaVerb::Set, S::NotStored, MetaOutcome::Set(SetOutcome::NotStored))
            | (MetaVerb::Set, S::Exists, MetaOutcome::Set(SetOutcome::Exists))
            | (MetaVerb::Set, S::NotFound, MetaOutcome::Set(SetOutcome::NotFound))
            | (MetaVerb::Delete, S::Done, MetaOutcome::Delete(DeleteOutcome::Deleted))
            | (MetaVerb::Delete, S::NotFound, MetaOutcome::Delete(DeleteOutcome::NotFound))
            | (MetaVerb::Delete, S::Exists, MetaOutcome::Delete(DeleteOutcome::Exists))
            | (MetaVerb::Arith, S::Value | S::Done, MetaOutcome::Arith(ArithOutcome::Updated { .. }))
            | (MetaVerb::Arith, S::NotFound, MetaOutcome::Arith(ArithOutcome::NotFound))
            | (MetaVerb::Arith, S::NotStored, MetaOutcome::Arith(ArithOutcome::NotStored))
            | (MetaVerb::Arith, S::Exists, MetaOutcome::Arith(ArithOutcome::Exists))
    )
}

/// Feeds `reply` to a connection that sent `batch`, in chunks the fuzzer picks; the result
/// when the batch completed, `None` when the bytes ended first, `Err` on a protocol error.
fn exchange(
    batch: MetaBatch,
    reply: &[u8],
    u: &mut Unstructured<'_>,
) -> Option<Result<Vec<Result<MetaOutcome, Error>>, Error>> {
    let mut conn = Connection::new();
    conn.send(batch.command());
    while conn.poll_transmit().is_some() {}
    let mut at = 0;
    while at < reply.len() {
        let n = usize::from(u.arbitrary::<u8>().unwrap_or(255)).max(1);
        let end = reply.len().min(at + n);
        conn.handle_input(&reply[at..end]);
        at = end;
        match conn.poll_response() {
            Ok(Some(done)) => return Some(batch.finish(done.response)),
            Ok(None) => {}
            Err(e) => return Some(Err(e.into())),
        }
    }
    None
}

/// The expected result of each request under the script: `None` for "an error line", else
/// the status it was answered with (`Silent` quiet requests succeed).
fn expected(acts: &[Act]) -> Vec<Option<Act>> {
    let answered: Vec<bool> = acts.iter().map(|a| matches!(a, Act::Answer(_))).collect();
    (0..acts.len())
        .map(|i| {
            if answered[i] {
                return Some(acts[i]);
            }
            // An error line between the previous and next answered request covers this one.
            let lo = (0..i).rev().find(|&j| answered[j]).map_or(0, |j| j + 1);
            let hi = (i + 1..acts.len()).find(|&j| answered[j]).unwrap_or(acts.len());
            let covered = acts[lo..hi].iter().any(|a| matches!(a, Act::ErrorLines(_)));
            if covered { None } else { Some(acts[i]) }
        })
        .collect()
}

/// Target `meta`. The first byte picks a mode. Raw mode: arbitrary bytes are the reply to a
/// fixed batch; decoding and matching must not panic and must give one result per request.
/// Scripted mode: a random batch, a server that answers each request (with its opaque), stays
/// silent for quiet ones, or sends error lines; the results must be exactly what the script
/// means, with error lines failing just the unanswered requests around them.
pub fn meta(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut u = Unstructured::new(rest);
    if mode % 4 == 0 {
        let batch =
            || MetaBatch::new(["a", "b", "c"].map(|k| MetaRequest::from(MetaGet::new(k).expect("key"))));
        if let Some(Ok(results)) = exchange(batch(), rest, &mut Unstructured::new(&[])) {
            assert_eq!(results.len(), 3);
        }
        return;
    }
    let _ = scripted(&mut u);
}

fn scripted(u: &mut Unstructured<'_>) -> Result<()> {
    let n = u.int_in_range(1..=12usize)?;
    let requests = (0..n).map(|_| request(u)).collect::<Result<Vec<_>>>()?;
    let mut acts = Vec::with_capacity(n);
    let mut reply = BytesMut::new();
    for (i, r) in requests.iter().enumerate() {
        let act = match u.int_in_range(0..=5u8)? {
            0 if r.quiet_in_batch() => Act::Silent,
            1 => Act::ErrorLines(u.int_in_range(0..=1u8)?),
            _ => Act::Answer(*u.choose(statuses(r.verb()))?),
        };
        render(&mut reply, i, r, act, u)?;
        acts.push(act);
    }
    reply.put_slice(b"MN\r\n");
    let batch = MetaBatch::new(requests.clone());
    let mut sent = BytesMut::new();
    batch.command().encode(&mut sent);
    let opaques = sent.windows(2).filter(|w| *w == b" O").count();
    assert!(opaques >= n && sent.ends_with(b"mn\r\n"), "every request carries an opaque, then mn");
    let results = match exchange(batch, &reply, u) {
        Some(Ok(results)) => results,
        other => panic!("a well-formed script completes: {other:?}"),
    };
    assert_eq!(results.len(), n);
    for ((r, want), got) in requests.iter().zip(expected(&acts)).zip(&results) {
        match (want, got) {
            (None, Err(Error::Client(_))) => {}
            (Some(Act::Silent), Ok(_)) => {}
            (Some(Act::Answer(status)), Ok(o)) => {
                assert!(means(r.verb(), status, o), "{status:?} read as {o:?}")
            }
            (Some(Act::ErrorLines(_)), Err(Error::Client(_))) => {}
            (want, got) => panic!("{:?}: expected {want:?}, got {got:?}", r.verb()),
        }
    }
    Ok(())
}

/// The input of [`meta`] in raw mode: reply bytes to the fixed batch `mg a`, `mg b`, `mg c`.
pub fn meta_raw_input(reply: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(reply);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts_of_every_shape_pass() {
        let mut completed = 0;
        for seed in 0u32..400 {
            let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
            let bytes: Vec<u8> = (0..512)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            completed += usize::from(super::scripted(&mut arbitrary::Unstructured::new(&bytes)).is_ok());
        }
        assert!(completed > 300, "only {completed} scripts ran to the end");
        super::meta(&super::meta_raw_input(b"VA 1 O0\r\nx\r\nCLIENT_ERROR oops\r\nMN\r\n"));
    }
}
