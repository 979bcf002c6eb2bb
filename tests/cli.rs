//! The kinit binary as operators use it: exit codes (0 ok, 1 failed, 2 usage) and output.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn kinit() -> Command {
    let mut c = Command::cargo_bin("kinit").unwrap();
    c.env_remove("KINIT_CONFIG").env("NO_COLOR", "1");
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// `kinit init`'s cluster.yaml, written in `dir`.
fn init_config(dir: &Path) -> PathBuf {
    let config = dir.join("cluster.yaml");
    kinit()
        .arg("-c")
        .arg(&config)
        .arg("init")
        .assert()
        .success();
    config
}

/// What `kinit ARGS` prints when it succeeds.
fn stdout_of(args: &[&str]) -> String {
    let out = kinit()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn help_lists_only_working_commands() {
    insta::assert_snapshot!("help", stdout_of(&["--help"]));
}

/// `up --help` names every phase `--skip-phases`, `--only-phase` and `--from-phase` take, in the
/// built-in playbook's order.
#[test]
fn up_help_lists_the_playbooks_phases() {
    let help = stdout_of(&["up", "--help"]);
    let book = kinit::engine::playbook::load(None).unwrap();
    let names: Vec<&str> = book.phases.iter().map(|p| p.name.as_str()).collect();
    let listed = help
        .split_once("in order;")
        .and_then(|(_, rest)| rest.split_once("): "))
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(list, _)| list.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no phase list in {help}"));
    assert_eq!(listed, names.join(", "), "{help}");
    assert!(names.contains(&"kubelets") && names.contains(&"etcd-snapshots"));
}

/// `--rollout` and the flags of `kinit up` it takes.
#[test]
fn certs_renew_help_shows_the_rollout() {
    insta::assert_snapshot!("certs_renew_help", stdout_of(&["certs", "renew", "--help"]));
}

#[test]
fn version_prints_the_crate_version() {
    kinit()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    kinit().arg("frobnicate").assert().code(2);
    kinit()
        .args(["init", "--control-planes", "many"])
        .assert()
        .code(2);
    kinit()
        .args(["init", "--etcd-hosts", "3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--topology external"));
}

#[test]
fn init_writes_a_valid_config_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    kinit()
        .current_dir(dir.path())
        .args([
            "init",
            "--topology",
            "external",
            "--control-planes",
            "2",
            "--workers",
            "4",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote cluster.yaml"));
    let first = std::fs::read_to_string(&file).unwrap();
    assert!(first.contains("topology: external"));

    kinit()
        .current_dir(dir.path())
        .args(["init"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists; pass --force"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        first,
        "refused init must not touch the file"
    );

    kinit()
        .current_dir(dir.path())
        .args(["config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cluster.yaml is valid"))
        .stdout(predicate::str::contains(
            "etcd1 (192.168.9.13), etcd2 (192.168.9.14), etcd3 (192.168.9.15)",
        ))
        .stdout(predicate::str::contains("worker4"));

    kinit()
        .current_dir(dir.path())
        .args(["init", "--force", "--control-planes", "5"])
        .assert()
        .success();
    let second = std::fs::read_to_string(&file).unwrap();
    assert!(second.contains("name: cp5") && second.contains("topology: stacked"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary files left beside cluster.yaml"
    );
}

#[test]
fn an_invalid_config_exits_1_with_every_problem_located() {
    let assert = kinit()
        .args([
            "-c",
            fixture("many-errors-at-once.yaml").to_str().unwrap(),
            "config",
            "validate",
        ])
        .assert()
        .code(1);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    for needle in [
        "many-errors-at-once.yaml:7:13",
        "many-errors-at-once.yaml:11:11",
        "many-errors-at-once.yaml:19:19",
        "did you mean `address`?",
        "did you mean `stacked`?",
        "5 errors, 0 warnings",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        assert.get_output().stdout.is_empty(),
        "nothing on stdout for an invalid config"
    );
}

#[test]
fn warnings_alone_still_validate() {
    kinit()
        .args([
            "-c",
            fixture("even-etcd-members.yaml").to_str().unwrap(),
            "config",
            "validate",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("is valid (1 warning)"))
        .stderr(predicate::str::contains("quorum is 2"));
}

#[test]
fn json_output_carries_locations() {
    let out = kinit()
        .args([
            "-o",
            "json",
            "-c",
            fixture("duplicate-host-name.yaml").to_str().unwrap(),
            "config",
            "validate",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["valid"], false);
    let p = &doc["problems"][0];
    assert_eq!(p["code"], "config::duplicate-host");
    assert_eq!(p["path"], "spec.hosts[2].name");
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(19), Some(14))
    );
}

#[test]
fn a_missing_config_is_a_usage_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    kinit()
        .current_dir(dir.path())
        .args(["config", "validate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kinit init"));
}

#[test]
fn quiet_valid_config_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    kinit()
        .current_dir(dir.path())
        .args(["-q", "init"])
        .assert()
        .success()
        .stdout("");
    kinit()
        .current_dir(dir.path())
        .args(["-q", "config", "validate"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn completion_and_man_page_come_from_the_cli_definition() {
    kinit()
        .args(["completion", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_kinit()").and(predicate::str::contains("validate")));
    kinit()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie").or(predicate::str::contains(".TH kinit")));
}

#[test]
fn snapshot_status_refuses_what_is_not_an_etcd_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // No such file: a usage error.
    kinit()
        .args(["etcd", "snapshot", "status"])
        .arg(dir.path().join("missing.db"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such snapshot file"));
    // Garbage and an empty file: named, exit 1, no panic.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 10_000]).unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for f in [&garbage, &empty] {
        kinit()
            .args(["etcd", "snapshot", "status"])
            .arg(f)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(f.to_str().unwrap()));
    }
}

/// The day-two commands parse with the global `-o` (a subcommand flag that shadows a global one,
/// such as a second `--output`, only panics once parsed).
#[test]
fn day_two_commands_parse_alongside_the_global_output_format() {
    use clap::Parser;
    use kinit::cli::{Cli, Command, EtcdCommand, SnapshotCommand};
    let cli =
        Cli::try_parse_from(["kinit", "-o", "json", "etcd", "snapshot", "save", "x.db"]).unwrap();
    let Command::Etcd(EtcdCommand::Snapshot(SnapshotCommand::Save(args))) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    assert_eq!(args.options().output, Some(PathBuf::from("x.db")));
    let cli =
        Cli::try_parse_from(["kinit", "reset", "--hosts", "cp3", "-y", "-o", "json"]).unwrap();
    let Command::Reset(args) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    let opts = args.options();
    assert!(opts.yes && !opts.dry_run && !opts.purge);
    assert_eq!(opts.selector.as_deref(), Some("cp3"));
    let cli = Cli::try_parse_from([
        "kinit",
        "remove",
        "cp2",
        "cp3",
        "--unreachable",
        "--force",
        "--dry-run",
        "-o",
        "json",
    ])
    .unwrap();
    let Command::Remove(args) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    let opts = args.options();
    assert_eq!(opts.hosts, ["cp2", "cp3"]);
    assert!(opts.unreachable && opts.force && opts.dry_run && !opts.yes);
    assert!(
        Cli::try_parse_from(["kinit", "remove", "--yes"]).is_err(),
        "remove needs at least one HOST"
    );
    // `kinit kubeconfig`: the file is a positional FILE, so `-o` stays the output format.
    use kinit::commands::kubeconfig::KubeconfigTarget;
    let cli =
        Cli::try_parse_from(["kinit", "-o", "json", "kubeconfig", "a.conf", "--force"]).unwrap();
    let Command::Kubeconfig(args) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    let KubeconfigTarget::File { path, force } = args.options().target else {
        panic!("not a file target")
    };
    assert_eq!((path, force), (PathBuf::from("a.conf"), true));
    let cli = Cli::try_parse_from(["kinit", "kubeconfig", "--merge", "-o", "json"]).unwrap();
    let Command::Kubeconfig(args) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    assert!(matches!(args.options().target, KubeconfigTarget::Merge));
    for bad in [
        &["kinit", "kubeconfig"][..],
        &["kinit", "kubeconfig", "a.conf", "--merge"],
        &["kinit", "kubeconfig", "--merge", "--force"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn the_summary_shows_etcd_snapshots_when_set() {
    let ipv6 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render/ipv6.yaml");
    kinit()
        .arg("-c")
        .arg(&ipv6)
        .args(["config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "etcd snapshots Mon..Fri *-*-* 02:30:00 on each etcd host, newest 7 kept in /srv/backup/etcd",
        ));
    let out = kinit()
        .args(["-o", "json", "-c"])
        .arg(&ipv6)
        .args(["config", "validate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        doc["summary"]["etcdSnapshots"],
        serde_json::json!({"schedule": "Mon..Fri *-*-* 02:30:00", "keep": 7, "dir": "/srv/backup/etcd"})
    );
    // Off: no line, null in JSON.
    let stacked = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render/stacked.yaml");
    let out = kinit()
        .arg("-c")
        .arg(&stacked)
        .args(["config", "validate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&out).contains("etcd snapshots"));
}

#[test]
fn restore_on_a_cluster_without_etcd_hosts_is_refused_before_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_config(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("roles: [control-plane, etcd]", "roles: [worker]");
    std::fs::write(&config, text).unwrap();
    let snapshot = dir.path().join("s.db");
    std::fs::write(&snapshot, b"not even read").unwrap();
    kinit()
        .arg("-c")
        .arg(&config)
        .args(["etcd", "snapshot", "restore", "--yes"])
        .arg(&snapshot)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no host has the etcd role"));
    assert!(snapshot.exists());
}

/// Every command that renders files `up` wrote reads the same `--templates` overrides (a
/// removal or restore rendering with the built-in ones would undo them on the hosts it
/// touches), and a misspelt override stops it before any host or file is touched.
#[test]
fn every_command_that_renders_takes_the_template_overrides_up_took() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_config(dir.path());
    let overrides = dir.path().join("templates");
    std::fs::create_dir(&overrides).unwrap();
    std::fs::write(overrides.join("haproxy.cfg.ter.tera"), "x").unwrap();
    let snapshot = dir.path().join("s.db");
    std::fs::write(&snapshot, b"not even read").unwrap();
    let snapshot = snapshot.to_str().unwrap();
    for command in [
        &["render"][..],
        &["up", "--dry-run"],
        &["remove", "cp3", "--dry-run"],
        &["etcd", "snapshot", "restore", snapshot, "--yes"],
        &["etcd", "snapshot", "restore", snapshot, "--dry-run"],
    ] {
        kinit()
            .arg("-c")
            .arg(&config)
            .args(command)
            .arg("--templates")
            .arg(&overrides)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "haproxy.cfg.ter.tera does not replace any kinit template",
            ));
    }
    assert!(!dir.path().join("rendered").exists());
    assert!(std::path::Path::new(snapshot).exists());
}
