//! Issue 16, section 2: a bounded fuzz run (proptest, seeded) over config loading + validation +
//! diagnostics, and over the preflight probe's output parser. Inputs are mutations of a seed
//! corpus kept in the repo (tests/fixtures/fuzz/, plus the config, render and probe fixtures):
//! tokens of YAML and of the probe's format inserted, bytes deleted, replaced and spliced between
//! seeds. No input may panic.
//!
//! Bounded for CI: `KINIT_FUZZ_CASES` cases (default 1500) or `KINIT_FUZZ_SECS` seconds (default
//! 30) per target, whichever ends first. `KINIT_FUZZ_SEED` (a number) picks another
//! deterministic sequence; a failure prints the minimal input proptest shrank it to.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use kinit::facts::HostFacts;
use kinit::ui::config_report::render_problems;

/// Tokens a mutation inserts: YAML structure and scalars that stress types, the probe's section
/// marks and listener syntax, and characters that break lines or encodings.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    ", ",
    "\n",
    "\n  ",
    "\n    - ",
    "&a ",
    "*a",
    "!!str ",
    "!!map ",
    "!tag ",
    "<<: ",
    "? ",
    "|\n",
    ">-\n",
    "'",
    "\"",
    "# ",
    "---\n",
    "...\n",
    "\t",
    "\0",
    "\r",
    "\\n",
    "\\0",
    "%YAML 1.2\n",
    "\u{2028}",
    "\u{feff}",
    "ü",
    "𝕏",
    "99999999999999999999",
    "-1",
    "0x1F",
    "1e999",
    ".nan",
    "null",
    "~",
    "true",
    "87600000h",
    "8760h",
    "::",
    "/",
    "..",
    "*.",
    "eth0",
    "/var/lib/etcd",
    "192.168.9.300",
    "fd00::1",
    "cp1",
    "spec:",
    "hosts:",
    "==kinit:",
    "==\n",
    "==kinit:listeners==\n",
    "==kinit:meminfo==\n",
    "==kinit:addresses==\n",
    "LISTEN 0 128 ",
    "users:((\"",
    "pid=",
    ",fd=",
    "MemTotal:",
    " kB",
    "[::]:",
    "*:",
    "%",
    "18446744073709551616",
];

fn corpus(dirs: &[&str]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        seeds.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    }
    assert!(!seeds.is_empty());
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert {
        at: usize,
        token: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Replace {
        at: usize,
        byte: u8,
    },
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    Splice {
        at: usize,
        seed: usize,
        from: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        2 => (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace { at, byte }),
        1 => (any::<usize>(), 1usize..16, 1usize..64)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..200)
            .prop_map(|(at, seed, from, len)| Mutation::Splice { at, seed, from, len }),
    ]
}

fn apply(seeds: &[Vec<u8>], seed: usize, mutations: &[Mutation]) -> String {
    let mut bytes = seeds[seed % seeds.len()].clone();
    for m in mutations {
        let at = |i: usize, bytes: &Vec<u8>| {
            if bytes.is_empty() {
                0
            } else {
                i % (bytes.len() + 1)
            }
        };
        match *m {
            Mutation::Insert { at: i, token } => {
                let i = at(i, &bytes);
                bytes.splice(i..i, TOKENS[token].bytes());
            }
            Mutation::Delete { at: i, len } => {
                let i = at(i, &bytes);
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Replace { at: i, byte } => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = byte;
                }
            }
            Mutation::Repeat { at: i, len, times } => {
                let i = at(i, &bytes);
                let end = (i + len).min(bytes.len());
                let piece = bytes[i..end].to_vec();
                for _ in 0..times {
                    bytes.splice(i..i, piece.iter().copied());
                }
            }
            Mutation::Splice {
                at: i,
                seed,
                from,
                len,
            } => {
                let other = &seeds[seed % seeds.len()];
                let from = if other.is_empty() {
                    0
                } else {
                    from % other.len()
                };
                let end = (from + len).min(other.len());
                let i = at(i, &bytes);
                bytes.splice(i..i, other[from..end].iter().copied());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `target` on mutated seeds for the configured number of cases or seconds.
fn fuzz(dirs: &[&str], target: impl Fn(&str)) {
    let seeds = corpus(dirs);
    let cases = env_number("KINIT_FUZZ_CASES", 1500) as u32;
    let deadline = Instant::now() + Duration::from_secs(env_number("KINIT_FUZZ_SECS", 30));
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&env_number("KINIT_FUZZ_SEED", 16).to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let strategy = (any::<usize>(), prop::collection::vec(mutation(), 0..8));
    let result = runner.run(&strategy, |(seed, mutations)| {
        // Past the time bound the remaining cases pass without work (a shrink still runs).
        if Instant::now() < deadline {
            target(&apply(&seeds, seed, &mutations));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn config_loading_and_validation_never_panic() {
    fuzz(
        &[
            "tests/fixtures/fuzz/config",
            "tests/fixtures/config",
            "tests/fixtures/render",
        ],
        |text| {
            let (config, report) = kinit::config::check(Path::new("fuzz.yaml"), text.to_string());
            for p in &report.problems {
                let _ = report.location(p);
            }
            let _ = report.diagnostics();
            let _ = render_problems(&report, false);
            // A config that validates must also build the inventory the commands use.
            if let Some(config) = config
                && !report.has_errors()
            {
                let _ = kinit::inventory::Inventory::from_config(&config, Path::new("/tmp"), None);
            }
        },
    );
}

#[test]
fn the_probe_output_parser_never_panics() {
    fuzz(
        &["tests/fixtures/fuzz/probe", "tests/fixtures/probe"],
        |text| {
            let _ = HostFacts::parse(text);
        },
    );
}
