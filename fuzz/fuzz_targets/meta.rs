//! Fuzz target `meta`: see [`memcache_fuzz::meta`]. Under `cargo fuzz run meta` this is a libFuzzer
//! target; built without `--cfg fuzzing` it replays the files (or directories) it is given.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| memcache_fuzz::meta(data));

#[cfg(not(fuzzing))]
fn main() {
    memcache_fuzz::replay_main(memcache_fuzz::meta);
}
