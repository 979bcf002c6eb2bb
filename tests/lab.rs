//! The lab on real systemd-nspawn nodes: up, SSH with strict host-key checking, identities,
//! stop/start, recovery after a killed node, down without leftovers.
//!
//! Needs root, systemd-nspawn, debootstrap, iproute2 and openssh-client (.ci/run installs them)
//! and fails without them. The first run builds the node image (~3 min). Traffic goes only to
//! the nodes this test creates, on the bridge it creates.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use support::hang_guard::{kinit, output_within};

const LAB: &str = "ktest";
const SUBNET: &str = "10.213.200.0/24";

fn kinit_ok(args: &[&str]) -> String {
    let out = kinit(args);
    assert!(
        out.status.success(),
        "kinit {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&kinit_ok(args)).expect("JSON output")
}

/// `kinit lab down` even when an assertion fails, so a failed run leaves nothing behind.
struct DownOnDrop;

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = kinit(&["lab", "down", "--name", LAB, "-q"]);
    }
}

/// OpenSSH as an operator would use it: the lab key, the lab's known_hosts, strict checking.
fn ssh(key: &Path, known_hosts: &Path, address: &str, script: &str) -> Output {
    let mut ssh = Command::new("ssh");
    ssh.arg("-i")
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("root@{address}"))
        .arg(script);
    output_within(&mut ssh, Duration::from_secs(120))
}

fn ssh_ok(key: &Path, known_hosts: &Path, address: &str, script: &str) -> String {
    let out = ssh(key, known_hosts, address, script);
    assert!(
        out.status.success(),
        "ssh {address} `{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What a node says about itself.
struct Identity {
    hostname: String,
    machine_id: String,
    address: String,
    system_state: String,
    failed_units: String,
    default_routes: usize,
}

fn identity(key: &Path, kh: &Path, address: &str) -> Identity {
    let out = ssh_ok(
        key,
        kh,
        address,
        "hostname; cat /etc/machine-id; ip -4 -br addr show dev host0; \
         systemctl is-system-running --wait || true; echo ---; \
         systemctl --failed --no-legend --plain; \
         for u in $(systemctl --failed --no-legend --plain | cut -d' ' -f1); do \
         journalctl -b -u $u --no-pager -n 8; done; echo ---; ip -4 route show default",
    );
    let (head, rest) = out.split_once("---\n").expect("marker");
    let (failed, routes) = rest.split_once("---\n").expect("marker");
    let lines: Vec<&str> = head.lines().collect();
    assert!(lines.len() >= 4, "unexpected output from {address}: {out}");
    Identity {
        hostname: lines[0].to_string(),
        machine_id: lines[1].to_string(),
        address: lines[2].split_whitespace().nth(2).unwrap_or("").to_string(),
        system_state: lines[3].to_string(),
        failed_units: failed.trim().to_string(),
        default_routes: routes.lines().filter(|l| !l.trim().is_empty()).count(),
    }
}

fn sshd_port_open(address: &str) -> bool {
    let addr: SocketAddr = format!("{address}:22").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// A recorded process (pid + start time) still running? Zombies awaiting their reaper are gone.
fn alive(p: &Value) -> bool {
    let pid = p["pid"].as_i64().unwrap();
    let start = p["start_time"].as_u64().unwrap();
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[0] != "Z" && f[0] != "X" && f[19].parse::<u64>().unwrap() == start
}

fn state(lab_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(lab_dir.join("state.json")).unwrap()).unwrap()
}

fn node<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {v}"))
}

fn processes_in_pid_namespace(ns: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l.to_string_lossy() == ns)
        })
        .filter(|e| {
            // A zombie has released everything but its PID.
            std::fs::read_to_string(e.path().join("stat"))
                .map(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn lab_lifecycle_on_real_nodes() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the lab test needs root (CI runs as root)"
    );
    let ip_forward_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    // A previous run that was killed outright may have left the lab: start clean.
    kinit_ok(&["lab", "down", "--name", LAB, "-q"]);
    let _guard = DownOnDrop;

    // --- up ---------------------------------------------------------------------------------
    let up = json(&[
        "-o", "json", "lab", "up", "--name", LAB, "--nodes", "3", "--subnet", SUBNET,
    ]);
    let lab_dir = PathBuf::from(up["labDir"].as_str().unwrap());
    let key = PathBuf::from(up["identityFile"].as_str().unwrap());
    let kh = PathBuf::from(up["knownHosts"].as_str().unwrap());
    let cluster = PathBuf::from(up["clusterFile"].as_str().unwrap());
    let names: Vec<&str> = up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cp1", "cp2", "cp3"]);
    assert_eq!(up["started"].as_array().unwrap().len(), 3);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "lab private key mode");
    }
    let kh_text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(
        kh_text
            .lines()
            .filter(|l| l.starts_with("10.213.200."))
            .count(),
        3,
        "{kh_text}"
    );

    // --- every node: strict SSH, its own identity, a running systemd ---------------------------
    let mut ids = Vec::new();
    for n in up["nodes"].as_array().unwrap() {
        let address = n["address"].as_str().unwrap();
        let id = identity(&key, &kh, address);
        assert_eq!(id.hostname, n["name"].as_str().unwrap());
        assert_eq!(id.machine_id, n["machineId"].as_str().unwrap());
        assert_eq!(id.address, format!("{address}/24"));
        assert_eq!(
            id.system_state, "running",
            "{address}: failed units: {}",
            id.failed_units
        );
        assert_eq!(
            id.default_routes, 0,
            "{address} must not route beyond the lab"
        );
        ids.push(id);
    }
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a.hostname, b.hostname);
            assert_ne!(a.machine_id, b.machine_id);
            assert_ne!(a.address, b.address);
        }
    }

    // The image: kinit's packages installed (dpkg works), their packaged units disabled.
    let units = ssh_ok(
        &key,
        &kh,
        "10.213.200.11",
        "dpkg-query -W -f '${Package} ' etcd-server haproxy keepalived openssh-server chrony; echo; \
         systemctl is-enabled etcd haproxy keepalived || true",
    );
    let mut lines = units.lines();
    assert_eq!(
        lines.next().unwrap().trim(),
        "chrony etcd-server haproxy keepalived openssh-server"
    );
    assert_eq!(lines.collect::<Vec<_>>(), ["disabled"; 3], "{units}");

    // The lab subnet is routed to the lab's bridge and nowhere else.
    let routes = Command::new("ip")
        .args([
            "-4", "-o", "route", "show", "table", "all", "to", "root", SUBNET,
        ])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(routes.lines().count() >= 1, "{routes}");
    for r in routes.lines() {
        assert!(
            r.contains("dev kinit-ktest"),
            "route not via the lab bridge: {r}"
        );
    }

    // Strict checking is real: without the lab's known_hosts the same login is refused.
    let empty_kh = lab_dir.join("empty_known_hosts");
    std::fs::write(&empty_kh, "").unwrap();
    let refused = ssh(&key, &empty_kh, "10.213.200.11", "true");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Host key verification failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // `kinit lab ssh` logs in the same way.
    let out = kinit_ok(&["lab", "ssh", "--name", LAB, "cp2", "--", "hostname"]);
    assert_eq!(out.trim(), "cp2");

    // The cluster definition is ready for kinit.
    let validate = kinit_ok(&["-c", cluster.to_str().unwrap(), "config", "validate"]);
    assert!(validate.contains("is valid"), "{validate}");
    let cluster_text = std::fs::read_to_string(&cluster).unwrap();
    assert!(
        cluster_text.contains("nodeSubnet: 10.213.200.0/24"),
        "{cluster_text}"
    );
    assert!(
        cluster_text.contains("address: 10.213.200.100"),
        "{cluster_text}"
    );

    // --- up twice is a no-op -------------------------------------------------------------------
    let before = state(&lab_dir);
    let again = json(&["-o", "json", "lab", "up", "--name", LAB]);
    assert_eq!(again["started"].as_array().unwrap().len(), 0);
    let after = state(&lab_dir);
    for name in names.iter() {
        assert_eq!(node(&before, name)["nspawn"], node(&after, name)["nspawn"]);
    }

    // --- a subnet in use is refused, and nothing is left of the refused lab ---------------------
    let clash = kinit(&["lab", "up", "--name", "kclash", "--subnet", SUBNET]);
    assert_eq!(clash.status.code(), Some(2));
    let err = String::from_utf8_lossy(&clash.stderr);
    assert!(
        err.contains("already in use") && err.contains("kinit-ktest"),
        "{err}"
    );
    assert!(!lab_dir.parent().unwrap().join("kclash").exists());

    // --- stop / start --------------------------------------------------------------------------
    kinit_ok(&["lab", "stop", "--name", LAB, "cp2"]);
    assert!(
        !sshd_port_open("10.213.200.12"),
        "a stopped node's address must not answer"
    );
    assert!(
        sshd_port_open("10.213.200.11"),
        "the other nodes keep running"
    );
    let st = json(&["-o", "json", "lab", "status", "--name", LAB]);
    assert_eq!(node(&st[0], "cp2")["running"], false);
    assert_eq!(node(&st[0], "cp1")["running"], true);
    kinit_ok(&["lab", "start", "--name", LAB, "cp2"]);
    let back = identity(&key, &kh, "10.213.200.12"); // same host key: strict known_hosts still passes
    assert_eq!(back.hostname, ids[1].hostname);
    assert_eq!(back.machine_id, ids[1].machine_id);
    assert_eq!(back.system_state, "running", "{}", back.failed_units);

    // --- a crash: cp3's systemd-nspawn is killed; its systemd lives on; `up` cleans and reboots --
    let crashed = state(&lab_dir);
    let cp3 = node(&crashed, "cp3");
    let nspawn_pid = cp3["nspawn"]["pid"].as_i64().unwrap() as i32;
    // SAFETY: the pid was recorded by the lab for the process it started moments ago.
    assert_eq!(unsafe { libc::kill(nspawn_pid, libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(500));
    let recovered = json(&["-o", "json", "lab", "up", "--name", LAB]);
    let started: Vec<&str> = recovered["started"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(started, ["cp3"]);
    assert!(
        !alive(&cp3["leader"]),
        "the orphaned node systemd must have been stopped"
    );
    let cp3_now = identity(&key, &kh, "10.213.200.13");
    assert_eq!(cp3_now.machine_id, ids[2].machine_id);

    // --- down: nothing left --------------------------------------------------------------------
    let last = state(&lab_dir);
    let mut recorded = Vec::new();
    let mut namespaces = Vec::new();
    let mut links = vec![last["plan"]["bridge"].as_str().unwrap().to_string()];
    for n in last["nodes"].as_array().unwrap() {
        recorded.push(n["nspawn"].clone());
        recorded.push(n["leader"].clone());
        let leader = n["leader"]["pid"].as_i64().unwrap();
        namespaces.push(
            std::fs::read_link(format!("/proc/{leader}/ns/pid"))
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    let cgroups: Vec<String> = last["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["cgroups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
        })
        .collect();
    assert!(!cgroups.is_empty());
    for c in &cgroups {
        assert!(Path::new(c).is_dir(), "{c} should exist while up");
    }
    for n in last["plan"]["nodes"].as_array().unwrap() {
        links.push(n["veth"].as_str().unwrap().to_string());
    }
    for l in &links {
        assert!(
            Path::new("/sys/class/net").join(l).exists(),
            "{l} should exist while up"
        );
    }
    kinit_ok(&["lab", "down", "--name", LAB]);
    for p in &recorded {
        assert!(!alive(p), "process {p} survived `lab down`");
    }
    for ns in &namespaces {
        let left = processes_in_pid_namespace(ns);
        assert!(left.is_empty(), "processes left in {ns}: {left:?}");
    }
    for l in &links {
        assert!(
            !Path::new("/sys/class/net").join(l).exists(),
            "link {l} survived `lab down`"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let lab_prefix = lab_dir.to_string_lossy().into_owned();
    assert!(
        !mounts.lines().any(|l| l.contains(&lab_prefix)),
        "mounts left under {lab_prefix}"
    );
    assert!(!lab_dir.exists());
    // (No probe of the node addresses now: without the lab's bridge they would be routed
    // elsewhere, and tests only send traffic to nodes they created.)
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        ip_forward_before,
        "the lab must not change IP forwarding"
    );
    // And down again is harmless.
    let again = kinit_ok(&["lab", "down", "--name", LAB]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn lab_refuses_a_non_root_user_with_a_clear_error() {
    // setpriv (util-linux) drops to nobody for this one run of kinit.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_kinit"))
        .args(["lab", "up", "--name", LAB])
        .output()
        .expect("setpriv runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn a_failed_image_build_leaves_no_image_and_no_build_directory() {
    use kinit::lab::recipe::{BOOKWORM, Recipe};
    // A mirror on loopback where nothing listens: real debootstrap fails at its first download.
    let recipe = Recipe {
        mirror: "http://127.0.0.1:9/debian",
        ..BOOKWORM
    };
    assert_ne!(recipe.hash(), BOOKWORM.hash());
    let images = tempfile::Builder::new()
        .prefix("kinit-images-test")
        .tempdir()
        .unwrap();
    let err = kinit::lab::image::ensure(images.path(), &recipe, &kinit::lab::NullReporter)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("building image") && err.contains("debootstrap"),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(images.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
