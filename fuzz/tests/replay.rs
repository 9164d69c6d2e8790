//! Replays every fuzz target over its committed inputs on stable, without libFuzzer: the seed
//! corpus (`corpus/<target>/seed-*`) and the regression inputs (`regressions/<target>/*`,
//! inputs that once failed). With `MEMCACHE_FUZZ_REPLAY_ALL=1` the whole local corpus
//! directory is replayed, including what fuzzing runs added to it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn files(dir: &Path, only_seeds: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            !name.starts_with('.') && (!only_seeds || name.starts_with("seed-"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn replay_seeds_and_regressions() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let all = std::env::var_os("MEMCACHE_FUZZ_REPLAY_ALL").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, target) in memcache_fuzz::TARGETS {
        let seeds = files(&root.join("corpus").join(name), !all);
        assert!(!seeds.is_empty(), "target {name} has no committed seeds");
        let regressions = files(&root.join("regressions").join(name), false);
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("readable input");
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(format!("{name}: {}", file.strip_prefix(&root).unwrap_or(file).display()));
            }
        }
        println!("{name}: {} corpus inputs, {} regressions replayed", seeds.len(), regressions.len());
    }
    assert!(failures.is_empty(), "failing inputs:\n{}", failures.join("\n"));
}
