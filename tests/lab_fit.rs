//! A new lab must fit this machine, and finds a free subnet by itself: real `kinit lab up` runs,
//! real labs, this machine's real memory, disks and interfaces. Runs as root. Labs are removed
//! when the test ends however it ends; the refused ones must leave nothing behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ipnet::Ipv4Net;
use serde_json::Value;

use support::hang_guard::{kinit, kinit_limit, output_within};
use support::lab::{Lab, lab_up, text};

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the lab tests need root (CI runs as root)"
    );
}

/// `kinit ARGS` with extra environment variables, guarded like `kinit`.
fn kinit_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinit"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("KINIT_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_within(&mut cmd, kinit_limit(args))
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Every IPv4 network on this machine's interfaces: (interface, network).
fn interface_networks() -> Vec<(String, Ipv4Net)> {
    let out = Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .unwrap();
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut nets = Vec::new();
    for link in links.as_array().unwrap() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let net: Ipv4Net = format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"])
                .parse()
                .unwrap();
            nets.push((link["ifname"].as_str().unwrap().to_string(), net.trunc()));
        }
    }
    nets
}

fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[test]
fn a_second_lab_without_a_subnet_gets_a_free_one_and_says_which() {
    require_root();
    let _ = kinit(&["lab", "down", "--name", "kfit2"]);
    let first = lab_up("kfit1", "10.213.240.0/24", "1");
    // Removed on drop, however the test ends (declared before it comes up).
    let second = Lab {
        name: "kfit2",
        config: PathBuf::from("/var/lib/kinit/labs/kfit2/cluster.yaml"),
    };

    // What holds which subnet right before the pick: every other lab, every interface.
    let status: Value =
        serde_json::from_slice(&kinit(&["-o", "json", "lab", "status"]).stdout).unwrap();
    let lab_subnets: Vec<(String, Ipv4Net)> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["subnet"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(
        lab_subnets.contains(&("kfit1".to_string(), "10.213.240.0/24".parse().unwrap())),
        "{lab_subnets:?}"
    );

    // No --subnet; the walk starts at kfit1's subnet, so it must pass over it (and over
    // whatever else holds the ones after it).
    let out = kinit_env(
        &["lab", "up", "--name", "kfit2", "--nodes", "1"],
        &[("KINIT_LAB_FIRST_SUBNET", "10.213.240.0/24")],
    );
    assert!(out.status.success(), "lab up kfit2: {}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("subnet ") && l.contains(" picked (no --subnet given"))
        .unwrap_or_else(|| panic!("the pick is not reported:\n{report}"));
    let picked: Ipv4Net = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        line.contains("10.213.240.0/24 is used by lab kfit1"),
        "kfit1's subnet must be named as passed over: {line}"
    );
    assert_eq!(picked.prefix_len(), 24);
    assert!(
        u32::from(picked.network())
            > u32::from("10.213.240.0".parse::<std::net::Ipv4Addr>().unwrap()),
        "{picked}"
    );
    for (lab, net) in &lab_subnets {
        assert!(
            !overlap(picked, *net),
            "{picked} overlaps lab {lab} ({net})"
        );
    }
    for (ifname, net) in interface_networks() {
        if ifname != "kinit-kfit2" {
            assert!(!overlap(picked, net), "{picked} overlaps {net} on {ifname}");
        }
    }
    assert!(
        report.contains(&format!("lab kfit2 is up: {picked}")),
        "{report}"
    );

    // The lab is where the report says, and both labs' nodes answer over SSH.
    let st: Value =
        serde_json::from_slice(&kinit(&["-o", "json", "lab", "status", "--name", "kfit2"]).stdout)
            .unwrap();
    assert_eq!(st[0]["subnet"], picked.to_string());
    let address: std::net::Ipv4Addr = st[0]["nodes"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(picked.contains(&address), "{address} not in {picked}");
    assert_eq!(first.on("cp1", "hostname"), "cp1");
    assert_eq!(second.on("cp1", "hostname"), "cp1");
    assert_eq!(
        second.on("cp1", "ip -4 -br addr show dev host0 | awk '{print $3}'"),
        format!("{address}/24")
    );

    // Up again: the lab keeps its subnet, and no pick is reported.
    let again = kinit(&["lab", "up", "--name", "kfit2"]);
    assert!(again.status.success(), "{}", text(&again));
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.contains(&format!("lab kfit2 is already up ({picked}")) && !again.contains("picked"),
        "{again}"
    );

    // An explicit --subnet that is in use is still refused, and leaves nothing.
    let picked_text = picked.to_string();
    let clash = kinit(&[
        "lab",
        "up",
        "--name",
        "kfit5",
        "--nodes",
        "1",
        "--subnet",
        &picked_text,
    ]);
    assert_eq!(clash.status.code(), Some(2), "{}", text(&clash));
    let err = String::from_utf8_lossy(&clash.stderr);
    assert!(
        err.contains("already in use") && err.contains("kinit-kfit2"),
        "{err}"
    );
    assert!(!Path::new("/var/lib/kinit/labs/kfit5").exists());
    assert!(!link_exists("kinit-kfit5"));
}

#[test]
fn more_nodes_than_fit_are_refused_with_the_largest_lab_that_fits_and_nothing_is_created() {
    require_root();
    let out = kinit(&["lab", "up", "--name", "kfit3", "--nodes", "500"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("lab `kfit3`: 500 node(s) do not fit this machine"),
        "{err}"
    );
    // The numbers: needed against available, for each resource.
    for part in [
        " GiB needed",
        " available",
        "disk in ",
        " free",
        "CPU: ",
        " allowed",
    ] {
        assert!(err.contains(part), "no `{part}` in: {err}");
    }
    let largest: u32 = err
        .split("The largest lab that fits is --nodes ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no largest N in: {err}"));
    assert!((1..=20).contains(&largest), "{largest}: {err}");
    assert!(!Path::new("/var/lib/kinit/labs/kfit3").exists());
    assert!(!link_exists("kinit-kfit3"));
    assert!(!link_exists("vb-kfit3-cp1"));

    // The largest it names is itself accepted by the check (as far as the check: a lab that
    // large is not booted here), and one more is refused.
    if largest < 20 {
        let n = (largest + 1).to_string();
        let out = kinit(&["lab", "up", "--name", "kfit3", "--nodes", &n]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }

    // The escape hatch skips the check; the lab's own limit still refuses.
    let out = kinit_env(
        &["lab", "up", "--name", "kfit3", "--nodes", "500"],
        &[("KINIT_LAB_SKIP_CAPACITY", "1")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a lab has 1 to 20 nodes") && !err.contains("do not fit"),
        "{err}"
    );
    assert!(!Path::new("/var/lib/kinit/labs/kfit3").exists());
}

/// A tmpfs mounted as a lab state directory for the test. When dropped: any lab `name` in it
/// is taken down (in case kinit failed to refuse it), then the tmpfs is unmounted and its mount
/// point removed; a mount that cannot be unmounted is left as it is, never deleted through.
struct StateTmpfs {
    dir: PathBuf,
    lab: &'static str,
}

impl StateTmpfs {
    fn mount(bytes: u64, lab: &'static str) -> StateTmpfs {
        let dir = tempfile::Builder::new()
            .prefix("kinit-fit")
            .tempdir()
            .unwrap()
            .keep();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "kinit-fit",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs: {}", text(&out));
        StateTmpfs { dir, lab }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Drop for StateTmpfs {
    fn drop(&mut self) {
        let _ = kinit_env(
            &["lab", "down", "--name", self.lab, "-q"],
            &[("KINIT_STATE_DIR", self.path())],
        );
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if unmounted {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

#[test]
fn a_state_directory_with_too_little_room_is_refused_with_the_numbers_and_stays_empty() {
    require_root();
    use kinit::lab::capacity::{LabWorkload, Need};
    // Between what 2 and 3 nodes need with the image still to build: the largest fit is 2.
    let (two, three) = (
        Need::new(2, false, LabWorkload::Etcd).disk,
        Need::new(3, false, LabWorkload::Etcd).disk,
    );
    let state = StateTmpfs::mount((two + three) / 2, "kfit4");
    let state_dir = state.path().to_string();
    // An explicit subnet from this test's range, should the check fail to refuse.
    let out = kinit_env(
        &[
            "lab",
            "up",
            "--name",
            "kfit4",
            "--nodes",
            "3",
            // etcd's needs (the figures above), not the Kubernetes control plane's.
            "--bundle",
            "image",
            "--subnet",
            "10.213.239.0/24",
        ],
        &[("KINIT_STATE_DIR", &state_dir)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // The disk measured is the tmpfs (not the filesystem it is mounted on), and it is short.
    assert!(
        err.contains(&format!("disk in {state_dir}/labs: ")),
        "{err}"
    );
    assert!(err.contains("the image (not built yet) 512 MiB"), "{err}");
    let disk = err.split("disk in ").nth(1).unwrap();
    let disk = disk.split("; CPU").next().unwrap();
    assert!(disk.ends_with("free (short)"), "{disk}");
    assert!(
        err.contains("The largest lab that fits is --nodes 2 "),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&state.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "created in the state directory: {left:?}");
}
