//! Fuzz target `decode_split`: see [`memcache_fuzz::decode_split`]. Under `cargo fuzz run decode_split` this is a libFuzzer
//! target; built without `--cfg fuzzing` it replays the files (or directories) it is given.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| memcache_fuzz::decode_split(data));

#[cfg(not(fuzzing))]
fn main() {
    memcache_fuzz::replay_main(memcache_fuzz::decode_split);
}
