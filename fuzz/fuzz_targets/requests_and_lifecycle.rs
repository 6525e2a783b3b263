//! Arbitrary bytes through request validation and the lifecycle state machine (see
//! `doorstep_server::fuzzing`); libFuzzer reports any panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = doorstep_server::fuzzing::run(data);
});
