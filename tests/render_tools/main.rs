//! The rendered files, checked by the programs that will read them: haproxy, keepalived,
//! systemd, and a real etcd started from the rendered unit and config. Runs as root (CI does):
//! keepalived's check runs in private mount and network namespaces.

mod etcd;
mod snapshots;
#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kinit::host_paths as paths;
use kinit::render::{RenderedFile, write};
use support::render::{EXAMPLES, rendered};

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see .ci/run)"))
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files.iter().find(|f| f.path == path).unwrap()
}

/// A throwaway CA certificate for haproxy's `ca-file` (haproxy -c loads it).
fn throwaway_ca(dir: &Path) -> PathBuf {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kinit-test-ca",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt));
    assert!(out.status.success(), "{}", text(&out));
    crt
}

/// The rendered haproxy.cfg with its cluster CA path pointed at `ca` (the host's
/// /etc/kubernetes/pki/ca.crt does not exist here).
fn with_ca(cfg: &str, ca: &Path) -> String {
    assert!(cfg.contains(&format!("ca-file {}", paths::CA_CRT)), "{cfg}");
    cfg.replace(paths::CA_CRT, &ca.display().to_string())
}

#[test]
fn haproxy_accepts_every_rendered_config() {
    let dir = tempfile::tempdir().unwrap();
    let ca = throwaway_ca(dir.path());
    let mut checked = 0;
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            let Some(cfg) = files.iter().find(|f| f.path == paths::HAPROXY_CFG) else {
                continue;
            };
            let path = dir.path().join(format!("{example}-{host}.cfg"));
            std::fs::write(&path, with_ca(&cfg.content, &ca)).unwrap();
            let out = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    // The check can fail: an unknown balance algorithm is refused.
    let (_, files) = rendered("stacked").remove(0);
    let bad = with_ca(&file(&files, paths::HAPROXY_CFG).content, &ca)
        .replace("balance roundrobin", "balance roundrobinx");
    let path = dir.path().join("bad.cfg");
    std::fs::write(&path, bad).unwrap();
    let out = run(Command::new("haproxy").arg("-c").arg("-f").arg(&path));
    assert!(!out.status.success(), "{}", text(&out));
}

/// `keepalived --config-test` on the host's rendered /etc/keepalived, bind-mounted over the real
/// one in a private mount namespace, in a private network namespace where `interface` exists (a
/// veth; it carries no traffic and vanishes with the namespace).
fn keepalived_config_test(host_root: &Path, interface: Option<&str>) -> Output {
    let mut script = format!(
        "mount --bind '{}' /etc/keepalived",
        host_root.join("etc/keepalived").display()
    );
    if let Some(iface) = interface {
        script += &format!(" && ip link add {iface} type veth peer name kinit-peer0");
    }
    script += " && keepalived --config-test -l -f /etc/keepalived/keepalived.conf";
    run(Command::new("unshare")
        .args(["--mount", "--net", "sh", "-c"])
        .arg(script))
}

#[test]
fn keepalived_accepts_every_rendered_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for example in EXAMPLES {
        let inv = support::render::inventory(example);
        let iface = inv.endpoint.interface.clone();
        let out_dir = dir.path().join(example);
        for (host, files) in rendered(example) {
            if !files.iter().any(|f| f.path == paths::KEEPALIVED_CONF) {
                continue;
            }
            write::write_host(&out_dir, &host, &files).unwrap();
            let out = keepalived_config_test(&out_dir.join(&host), Some(&iface));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
    // The check can fail: without the configured interface keepalived refuses the config.
    let out = keepalived_config_test(&dir.path().join("stacked/cp1"), None);
    assert!(!out.status.success(), "{}", text(&out));
}

/// The etcd unit as this machine can verify it: the bundle's /usr/local/bin/etcd is not
/// installed here, Debian's etcd stands in for it.
fn unit_with_local_etcd(unit: &str) -> String {
    let etcd = which("etcd");
    unit.replace(paths::ETCD_BINARY, etcd.to_str().unwrap())
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not installed (see .ci/run)"))
}

fn systemd_verify(dir: &Path, unit: &str) -> Output {
    let path = dir.join("etcd.service");
    std::fs::write(&path, unit).unwrap();
    run(Command::new("systemd-analyze").arg("verify").arg(&path))
}

#[test]
fn systemd_accepts_the_etcd_unit() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (host, files) in rendered("external") {
        let Some(unit) = files.iter().find(|f| f.path == paths::ETCD_UNIT) else {
            continue;
        };
        let out = systemd_verify(dir.path(), &unit_with_local_etcd(&unit.content));
        // systemd-analyze exits 0 on unknown keys and bad values and only warns: any output is
        // a finding.
        assert!(
            out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
            "{host}: {}",
            text(&out)
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    let (_, files) = rendered("external").remove(3);
    let bad = unit_with_local_etcd(&file(&files, paths::ETCD_UNIT).content)
        .replace("Type=notify", "Type=notifyy");
    let out = systemd_verify(dir.path(), &bad);
    assert!(!out.stderr.is_empty(), "{}", text(&out));
}

#[test]
fn systemd_accepts_the_control_plane_units() {
    let dir = tempfile::tempdir().unwrap();
    let truth = which("true");
    let mut checked = 0;
    for (host, files) in rendered("external") {
        for (binary, unit_path) in [
            (paths::KUBE_APISERVER_BINARY, paths::KUBE_APISERVER_UNIT),
            (
                paths::KUBE_CONTROLLER_MANAGER_BINARY,
                paths::KUBE_CONTROLLER_MANAGER_UNIT,
            ),
            (paths::KUBE_SCHEDULER_BINARY, paths::KUBE_SCHEDULER_UNIT),
        ] {
            let Some(unit) = files.iter().find(|f| f.path == unit_path) else {
                continue;
            };
            // The bundle's binary is not here; any existing program lets systemd check the rest.
            let content = unit.content.replace(binary, truth.to_str().unwrap());
            let path = dir.path().join(Path::new(unit_path).file_name().unwrap());
            std::fs::write(&path, &content).unwrap();
            let out = run(Command::new("systemd-analyze").arg("verify").arg(&path));
            assert!(
                out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                "{host} {unit_path}: {}\n{content}",
                text(&out)
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 9,
        "three units on each of three control-plane hosts"
    );
}
