//! `kinit drill` as invoked: its subcommands and flags parse into the options the command
//! takes (a node drill's duration defaults past the controller-manager's grace), and without a terminal it needs --yes before any host is
//! contacted (exit 2).

use assert_cmd::Command;
use clap::Parser;
use kinit::cli::{Cli, Command as Sub};
use kinit::drill::{DrillKind, Thresholds};
use predicates::prelude::*;
use std::time::Duration;

fn kinit() -> Command {
    let mut c = Command::cargo_bin("kinit").unwrap();
    c.env_remove("KINIT_CONFIG").env("NO_COLOR", "1");
    c
}

fn parse(args: &[&str]) -> kinit::commands::drill::DrillOptions {
    let cli = Cli::try_parse_from(args).unwrap();
    let Sub::Drill(d) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    d.options()
}

#[test]
fn the_flags_become_options_and_the_gap_defaults_to_the_failover_budget() {
    let cli = Cli::try_parse_from([
        "kinit",
        "drill",
        "apiserver",
        "cp2",
        "--duration",
        "7",
        "--yes",
        "--max-failed",
        "3",
    ])
    .unwrap();
    let Sub::Drill(d) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    let o = d.options();
    assert_eq!(o.kind, DrillKind::Apiserver("cp2".into()));
    assert_eq!(o.duration.as_secs(), 7);
    assert!(o.yes);
    assert_eq!(o.thresholds.max_failed, Some(3));
    assert_eq!(
        u128::from(o.thresholds.max_gap_ms),
        Thresholds::default_max_gap().as_millis()
    );
    let cli =
        Cli::try_parse_from(["kinit", "drill", "etcd-leader", "--max-gap-ms", "250"]).unwrap();
    let Sub::Drill(d) = &cli.command else {
        panic!("{:?}", cli.command)
    };
    let o = d.options();
    assert_eq!(
        (o.kind, o.thresholds.max_gap_ms, o.yes),
        (DrillKind::EtcdLeader, 250, false)
    );
    // apiserver needs its host; the duration is bounded.
    assert!(Cli::try_parse_from(["kinit", "drill", "apiserver"]).is_err());
    assert!(Cli::try_parse_from(["kinit", "drill", "vip-holder", "--duration", "0"]).is_err());
}

#[test]
fn every_drill_is_offered_and_a_node_drill_lasts_past_the_grace_period_unless_told() {
    kinit()
        .args(["drill", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("vip-holder"))
        .stdout(predicate::str::contains("etcd-leader"))
        .stdout(predicate::str::contains("apiserver"))
        .stdout(predicate::str::contains("  node "));
    // A node needs its host.
    kinit().args(["drill", "node"]).assert().code(2);
    let o = parse(&["kinit", "drill", "node", "w1"]);
    assert_eq!(o.kind, DrillKind::Node("w1".into()));
    assert_eq!(o.duration, Duration::from_secs(70));
    let o = parse(&["kinit", "drill", "node", "w1", "--duration", "5"]);
    assert_eq!(o.duration, Duration::from_secs(5));
    let o = parse(&["kinit", "drill", "vip-holder"]);
    assert_eq!(o.duration, Duration::from_secs(10));
}

#[test]
fn without_a_terminal_or_yes_nothing_is_contacted() {
    // The config does not even exist: refused before it is read.
    kinit()
        .args(["-c", "/nonexistent/cluster.yaml", "drill", "vip-holder"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
}
