//! The CI fuzz run: the fuzz target (`doorstep_server::fuzzing::run`, the same one `fuzz/` hands to
//! libFuzzer) over a fixed-seed stream of pseudo-random inputs, plus inputs shaped to reach deep into
//! the lifecycle. Deterministic: the same cases on every run. `DOORSTEP_FUZZ_CASES` sets how many
//! (default 5 000); `DOORSTEP_FUZZ_SEED` another seed.

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_fuzz_target_finds_no_panic_on_seeded_inputs() {
    let cases = env("DOORSTEP_FUZZ_CASES", 5_000);
    let mut rng = Rng(env("DOORSTEP_FUZZ_SEED", 20_261_129).max(1));
    let mut accepted = 0;
    for case in 0..cases {
        let len = (rng.next() % 512) as usize;
        let mut data = rng.bytes(len);
        // Half the cases go to the lifecycle, the rest to request decoding and validation.
        if case % 2 == 0 && !data.is_empty() {
            data[0] = 2;
        }
        let result = std::panic::catch_unwind(|| doorstep_server::fuzzing::run(&data));
        if let Ok(n) = result {
            accepted += n;
        } else {
            panic!(
                "case {case} panicked; input (hex) {}",
                data.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
        }
    }
    // The run is worth something only if it reaches the state machine.
    println!("{cases} cases, {accepted} actions accepted by the lifecycle");
    assert!(
        accepted as u64 > cases / 4,
        "only {accepted} actions accepted in {cases} cases"
    );
}
