//! Issue 16, section 2: no config makes kinit panic or work without bound. A file over 1 MiB
//! (or an endless stream) is refused before parsing; deep nesting is refused before the parser
//! walks it; 20,000 unknown keys are each diagnosed at their place, with the printed list capped;
//! validities beyond 100 years are refused by validation, and `certs generate` never panics.
//! How long these take is measured by benches/config_load.sh, not asserted here.

use std::path::Path;

use assert_cmd::Command;
use kinit::config::{self, ConfigError, MAX_CONFIG_BYTES};
use kinit::ui::config_report::{MAX_PROBLEMS_SHOWN, render_problems};

const VALID: &str = "apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: demo
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    address: 192.168.9.100
  hosts:
    - {name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}
";

fn kinit() -> Command {
    let mut c = Command::cargo_bin("kinit").unwrap();
    c.env_remove("KINIT_CONFIG").env("NO_COLOR", "1");
    c
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    // A valid config padded with a comment to one byte over the limit.
    let mut text = VALID.to_string();
    text.push('#');
    text.push_str(&"x".repeat(MAX_CONFIG_BYTES as usize + 1 - text.len()));
    std::fs::write(&path, &text).unwrap();
    match config::load(&path) {
        Err(ConfigError::Read { source, .. }) => {
            assert!(source.to_string().contains("1024 KiB"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    // At the limit exactly, it is read (and valid).
    text.pop();
    std::fs::write(&path, &text).unwrap();
    config::load(&path).unwrap();

    // The same through the CLI: a clear error, exit 1 (not a panic's 101).
    text.push('x');
    std::fs::write(&path, &text).unwrap();
    kinit()
        .arg("-c")
        .arg(&path)
        .args(["config", "validate"])
        .assert()
        .failure()
        .code(predicates::ord::ne(101))
        .stderr(predicates::str::contains("limit for a cluster definition"));
}

#[test]
fn an_endless_stream_is_read_only_up_to_the_limit() {
    match config::load(Path::new("/dev/urandom")) {
        Err(ConfigError::Read { source, .. }) => {
            assert!(source.to_string().contains("limit"), "{source}")
        }
        other => panic!("{other:?}"),
    }
    kinit()
        .args(["-c", "/dev/zero", "config", "validate"])
        .assert()
        .failure()
        .code(predicates::ord::ne(101))
        .stderr(predicates::str::contains("limit for a cluster definition"));
}

#[test]
fn deep_nesting_is_refused_with_its_place() {
    for open in ["{a: ", "[", "- "] {
        let text = if open == "- " {
            (0..200)
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect()
        } else {
            open.repeat(100_000)
        };
        let (cfg, report) = config::check(Path::new("deep.yaml"), text);
        assert!(cfg.is_none());
        let problem = report.errors().next().unwrap();
        assert_eq!(
            problem.code, "config::too-deep",
            "{open}: {:?}",
            report.problems
        );
        assert_eq!(report.problems.len(), 1);
        assert!(problem.message.contains("64"), "{}", problem.message);
        assert!(report.location(problem).is_some());
    }
}

#[test]
fn twenty_thousand_unknown_keys_are_each_located_and_the_printout_is_capped() {
    let mut text = VALID.to_string();
    for i in 0..20_000 {
        text.push_str(&format!("unknownField{i:05}: value\n"));
    }
    let (_, report) = config::check(Path::new("many.yaml"), text);
    let unknown: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.code == "config::unknown-field")
        .collect();
    assert_eq!(unknown.len(), 20_000);
    let first_line = VALID.lines().count() + 1;
    for (i, p) in unknown.iter().enumerate() {
        let at = report.location(p).unwrap();
        assert_eq!((at.line, at.column), (first_line + i, 1), "{}", p.path);
    }
    let shown = render_problems(&report, false);
    // In file order: the first MAX_PROBLEMS_SHOWN keys are shown (with a line of context
    // around each), the ones after them are not.
    assert!(shown.contains(&format!("unknownField{:05}", MAX_PROBLEMS_SHOWN - 1)));
    assert!(!shown.contains(&format!("unknownField{:05}", MAX_PROBLEMS_SHOWN + 5)));
    assert!(
        shown.contains(&format!(
            "and {} more problem(s) not shown",
            report.problems.len() - MAX_PROBLEMS_SHOWN
        )),
        "{}",
        &shown[shown.len().saturating_sub(500)..]
    );
}

#[test]
fn validities_beyond_a_hundred_years_are_refused_and_certs_generate_never_panics() {
    for (field, value) in [
        ("caValidity", "87600000h"),
        ("certValidity", "8760000h"),
        ("caValidity", "99999999999999h"),
    ] {
        let text = format!("{VALID}  pki:\n    {field}: {value}\n");
        let (_, report) = config::check(Path::new("c.yaml"), text.clone());
        let problem = report
            .errors()
            .filter(|p| p.path == format!("spec.pki.{field}"))
            .find(|p| !p.message.contains("outlive"))
            .unwrap_or_else(|| panic!("{field}: {value} accepted: {:?}", report.problems));
        assert!(
            problem.message.contains("100 years") || problem.message.contains("not a duration"),
            "{}",
            problem.message
        );
        let at = report.location(problem).unwrap();
        assert_eq!(at.line, VALID.lines().count() + 2);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        std::fs::write(&path, &text).unwrap();
        let out = kinit()
            .arg("-c")
            .arg(&path)
            .args(["certs", "generate"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert_ne!(out.status.code(), Some(101), "{out:?}");
        assert!(!dir.path().join("pki").exists());
    }
}
