//! The rendered files, checked by the programs that will read them: haproxy, keepalived,
//! systemd, and a real etcd started from the rendered unit and config. Runs as root (CI does):
//! keepalived's check runs in private mount and network namespaces.

mod render_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kinit::host_paths as paths;
use kinit::render::{self, RenderedFile, Templates, write};
use render_support::{EXAMPLES, fixture, inventory_from, rendered};

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
        let inv = render_support::inventory(example);
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

/// Kills the etcd it holds when dropped, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A stand-in for kinit's PKI (built on another branch): an etcd CA, server and peer
/// certificates for 127.0.0.1, and a client certificate, at the host paths etcd is configured with.
fn make_etcd_certs(root: &Path) {
    let dir = root.join(paths::ETCD_PKI_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let key = |name: &str| {
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                name,
            ],
        )
    };
    key("ca.key");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=etcd-ca",
            "-days",
            "1",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,digitalSignature",
        ],
    );
    let server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
                      extendedKeyUsage=serverAuth,clientAuth\n";
    for (name, cn, ext) in [
        ("server", "etcd1", server_ext),
        ("peer", "etcd1", server_ext),
        (
            "healthcheck-client",
            "kube-etcd-healthcheck-client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        key(&format!("{name}.key"));
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

fn under(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

fn etcdctl_health(root: &Path, endpoint: &str, client_cert: bool) -> Output {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!(
            "--cacert={}",
            under(root, paths::ETCD_CA_CRT).display()
        ))
        .arg("--command-timeout=3s");
    if client_cert {
        cmd.arg(format!(
            "--cert={}",
            under(root, paths::ETCD_HEALTHCHECK_CLIENT_CRT).display()
        ))
        .arg(format!(
            "--key={}",
            under(root, paths::ETCD_HEALTHCHECK_CLIENT_KEY).display()
        ));
    }
    run(cmd.args(["endpoint", "health"]))
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// A loopback etcd host rendered in `mode`, written under a temporary root with test
/// certificates; `relocate` moves host paths under the root and the fixed etcd ports to free ones
/// (other tests on this machine may hold 2379/2380/2381).
struct EtcdHost {
    tmp: tempfile::TempDir,
    root: PathBuf,
    data_dir: String,
    ports: [u16; 3],
}

impl EtcdHost {
    fn new(mode: kinit::config::EtcdMode) -> Self {
        Self::with_snapshots(mode, None)
    }

    /// With `spec.etcd.snapshots` keeping `keep` in `<tmp>/snapshots` when given.
    fn with_snapshots(mode: kinit::config::EtcdMode, keep: Option<u32>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut inv = inventory_from(&fixture("etcd-loopback"));
        inv.etcd.mode = mode;
        inv.etcd.snapshots = keep.map(|keep| kinit::config::EtcdSnapshots {
            keep,
            dir: tmp.path().join("snapshots").display().to_string(),
            ..Default::default()
        });
        let host = inv.host("etcd1").unwrap();
        let files = render::render_host(&inv, host, &Templates::embedded().unwrap()).unwrap();
        write::write_host(tmp.path(), "etcd1", &files).unwrap();
        let root = tmp.path().join("etcd1");
        make_etcd_certs(&root);
        EtcdHost {
            root,
            tmp,
            data_dir: inv.etcd.data_dir.clone(),
            ports: free_ports::<3>(),
        }
    }

    fn relocate(&self, text: &str) -> String {
        let [client, peer, metrics] = self.ports;
        text.replace(
            "/etc/kubernetes/",
            &format!("{}/etc/kubernetes/", self.root.display()),
        )
        .replace(
            &format!("data-dir: {}", self.data_dir),
            &format!("data-dir: {}", under(&self.root, &self.data_dir).display()),
        )
        .replace(
            &format!("--data-dir={}", self.data_dir),
            &format!("--data-dir={}", under(&self.root, &self.data_dir).display()),
        )
        .replace(":2379", &format!(":{client}"))
        .replace(":2380", &format!(":{peer}"))
        .replace(":2381", &format!(":{metrics}"))
    }

    /// Start Debian's etcd with `args` and wait until it is healthy; it stops when the result
    /// is dropped.
    fn start(&self, args: &[String]) -> Running {
        let [client, _, _] = self.ports;
        let log_path = self.tmp.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let etcd = Running(
            Command::new(which("etcd"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let endpoint = format!("https://127.0.0.1:{client}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let healthy = loop {
            let out = etcdctl_health(&self.root, &endpoint, true);
            if out.status.success() {
                break out;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy: {}\netcd log:\n{}",
                text(&out),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        // etcdctl 3.4 reports health on stderr.
        assert!(text(&healthy).contains(&format!("{endpoint} is healthy")));
        etcd
    }

    /// Start Debian's etcd with `args`, wait until it is healthy, and check that it enforces
    /// client certificates and serves metrics.
    fn start_and_check(&self, args: &[String]) {
        let [client, _, metrics] = self.ports;
        let endpoint = format!("https://127.0.0.1:{client}");
        let etcd = self.start(args);
        // client-cert-auth: without a client certificate the same request is refused.
        let anonymous = etcdctl_health(&self.root, &endpoint, false);
        assert!(!anonymous.status.success(), "{}", text(&anonymous));
        // Metrics on their own plain-HTTP listener.
        let metrics_page = http_get(metrics, "/metrics");
        assert!(
            metrics_page.starts_with("HTTP/1.0 200"),
            "{metrics_page:.200}"
        );
        assert!(metrics_page.contains("etcd_server_has_leader 1"));
        drop(etcd);
    }
}

/// The rendered etcd unit's ExecStart, with the config (relocated under the root) it names.
fn systemd_etcd_args(host: &EtcdHost) -> Vec<String> {
    let config_path = under(&host.root, paths::ETCD_CONFIG);
    let config = host.relocate(&std::fs::read_to_string(&config_path).unwrap());
    std::fs::write(&config_path, config).unwrap();
    // Exactly the unit's ExecStart, with the config path under the root and Debian's etcd
    // standing in for the bundle's binary.
    let unit = std::fs::read_to_string(under(&host.root, paths::ETCD_UNIT)).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    let mut argv = exec.split_whitespace();
    assert_eq!(argv.next(), Some(paths::ETCD_BINARY));
    argv.map(|a| a.replace(paths::ETCD_CONFIG, config_path.to_str().unwrap()))
        .collect()
}

#[test]
fn the_rendered_etcd_unit_starts_a_real_etcd_with_client_cert_auth() {
    let host = EtcdHost::new(kinit::config::EtcdMode::Systemd);
    host.start_and_check(&systemd_etcd_args(&host));
}

#[test]
fn the_rendered_etcd_static_pod_command_starts_a_real_etcd() {
    // What the kubelet would run in the etcd container (the image is not obtainable here):
    // the pod's command, with Debian's etcd.
    let host = EtcdHost::new(kinit::config::EtcdMode::StaticPod);
    let manifest = std::fs::read_to_string(under(&host.root, paths::ETCD_MANIFEST)).unwrap();
    let pod: serde_yaml::Value = serde_yaml::from_str(&manifest).unwrap();
    let command: Vec<String> = pod["spec"]["containers"][0]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| host.relocate(v.as_str().unwrap()))
        .collect();
    assert_eq!(command[0], "etcd");
    host.start_and_check(&command[1..]);
}

/// `systemd-analyze verify` of a host's snapshot service and timer side by side (the timer
/// names the service), the service's ExecStart pointed at a copy of the rendered script.
fn systemd_verify_snapshot_units(dir: &Path, files: &[RenderedFile], timer: &str) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("etcd-snapshot.sh");
    std::fs::write(&script, &file(files, paths::ETCD_SNAPSHOT_SCRIPT).content).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = file(files, paths::ETCD_SNAPSHOT_SERVICE)
        .content
        .replace(paths::ETCD_SNAPSHOT_SCRIPT, script.to_str().unwrap());
    let service_path = dir.join("kinit-etcd-snapshot.service");
    let timer_path = dir.join("kinit-etcd-snapshot.timer");
    std::fs::write(&service_path, service).unwrap();
    std::fs::write(&timer_path, timer).unwrap();
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&timer_path)
        .arg(&service_path))
}

#[test]
fn systemd_accepts_the_snapshot_service_timer_and_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for example in EXAMPLES {
        for (host, files) in rendered(example) {
            let Some(timer) = files.iter().find(|f| f.path == paths::ETCD_SNAPSHOT_TIMER) else {
                continue;
            };
            let out = systemd_verify_snapshot_units(dir.path(), &files, &timer.content);
            // Any output is a finding (systemd-analyze only warns about bad values).
            assert!(
                out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                "{example}/{host}: {}",
                text(&out)
            );
            // The schedule, as systemd reads it.
            let schedule = timer
                .content
                .lines()
                .find_map(|l| l.strip_prefix("OnCalendar="))
                .expect("the timer has an OnCalendar");
            let out = run(Command::new("systemd-analyze")
                .arg("calendar")
                .arg(schedule));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            // The script is valid sh.
            let out = run(Command::new("sh")
                .arg("-n")
                .arg(dir.path().join("etcd-snapshot.sh")));
            assert!(out.status.success(), "{example}/{host}: {}", text(&out));
            checked.push(format!("{example}/{host}: {schedule}"));
        }
    }
    assert_eq!(
        checked,
        [
            "external/etcd1: hourly",
            "external/etcd2: hourly",
            "external/etcd3: hourly",
            "ipv6/cp1: Mon..Fri *-*-* 02:30:00",
            "ipv6/cp2: Mon..Fri *-*-* 02:30:00",
            "ipv6/cp3: Mon..Fri *-*-* 02:30:00",
        ]
    );
    // The checks can fail: a schedule systemd cannot read, and a unit setting it does not know.
    let (_, files) = rendered("external").remove(3);
    let timer = &file(&files, paths::ETCD_SNAPSHOT_TIMER).content;
    let out = systemd_verify_snapshot_units(
        dir.path(),
        &files,
        &timer.replace("OnCalendar=hourly", "OnCalendar=hourlyy"),
    );
    assert!(
        !out.status.success() && !out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    let out = systemd_verify_snapshot_units(
        dir.path(),
        &files,
        &timer.replace("Persistent=true", "Persistent=maybe"),
    );
    assert!(!out.stderr.is_empty(), "{}", text(&out));
    let out = run(Command::new("systemd-analyze").args(["calendar", "Mon..Fry 02:30"]));
    assert!(!out.status.success(), "{}", text(&out));
}

/// The snapshot files in `dir` whose names are the script's own (`solo-etcd1-<UTC time>.db`).
fn own_snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("solo-etcd1-")
                .and_then(|t| t.strip_suffix("Z.db"))
                .is_some_and(|t| {
                    t.len() == 15 && t.as_bytes()[8] == b'T' && t.replace('T', "").len() == 14
                })
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_rendered_snapshot_script_saves_checks_and_rotates_snapshots_of_a_real_etcd() {
    use std::os::unix::fs::PermissionsExt;
    let host = EtcdHost::with_snapshots(kinit::config::EtcdMode::Systemd, Some(2));
    let _etcd = host.start(&systemd_etcd_args(&host));
    let [client, _, _] = host.ports;
    let endpoint = format!("https://127.0.0.1:{client}");
    // A key to find in the snapshot's key count.
    let mut put = Command::new("etcdctl");
    put.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!(
            "--cacert={}",
            under(&host.root, paths::ETCD_CA_CRT).display()
        ))
        .arg(format!(
            "--cert={}",
            under(&host.root, paths::ETCD_HEALTHCHECK_CLIENT_CRT).display()
        ))
        .arg(format!(
            "--key={}",
            under(&host.root, paths::ETCD_HEALTHCHECK_CLIENT_KEY).display()
        ))
        .args(["put", "kinit-snapshot-test", "1"]);
    let out = run(&mut put);
    assert!(out.status.success(), "{}", text(&out));

    // The rendered script, with the certificates and port of this loopback etcd.
    let script = under(&host.root, paths::ETCD_SNAPSHOT_SCRIPT);
    std::fs::write(
        &script,
        host.relocate(&std::fs::read_to_string(&script).unwrap()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = host.tmp.path().join("snapshots");

    // What the script must never remove: another host's snapshot, other files, a directory
    // named like a snapshot. An old snapshot of its own counts against `keep`.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let foreign = [
        "solo-etcd2-20000101T000000Z.db",
        "solo-etcd1-20000101T000000Z.db.bak",
        "solo-etcd1-latest.db",
        "notes.txt",
    ];
    for f in foreign {
        std::fs::write(dir.join(f), "not a snapshot").unwrap();
    }
    std::fs::create_dir(dir.join("solo-etcd1-19990101T000000Z.db")).unwrap();
    std::fs::write(dir.join("solo-etcd1-20000101T000000Z.db"), "old").unwrap();

    let mut seen: Vec<String> = Vec::new();
    for run_no in 1..=3 {
        let before = own_snapshots(&dir);
        let out = run_script(&script);
        assert!(out.status.success(), "run {run_no}: {}", text(&out));
        let after = own_snapshots(&dir);
        let new: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
        assert_eq!(new.len(), 1, "run {run_no}: {before:?} -> {after:?}");
        let new = new[0].clone();
        let path = dir.join(&new);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "run {run_no}: {new}");
        let status = run(Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "--write-out=json"])
            .arg(&path));
        assert!(status.status.success(), "{new}: {}", text(&status));
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert!(status["totalKey"].as_u64().unwrap() >= 1, "{status}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("saved {}", path.display())),
            "{}",
            text(&out)
        );
        seen.push(new);
    }
    // Two kept (`keep: 2`): the old one went at the second run, the first new one at the third.
    assert_eq!(own_snapshots(&dir), seen[1..].to_vec());
    for f in foreign {
        assert!(dir.join(f).is_file(), "{f} was removed");
    }
    assert!(dir.join("solo-etcd1-19990101T000000Z.db").is_dir());
    // No temporary file is left behind.
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // A directory others may write to is refused (someone could plant the names it writes).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_script(&script);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is writable by group or others"),
        "{}",
        text(&out)
    );
    assert_eq!(own_snapshots(&dir), seen[1..].to_vec());

    // A missing directory is created 0700; a stopped etcd fails the run and leaves no file.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = run_script(&script);
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert_eq!(own_snapshots(&dir).len(), 1);
    drop(_etcd);
    let started = Instant::now();
    let out = run_script(&script);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "the etcd member at https://127.0.0.1:{client} does not answer"
        )),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a stopped etcd left a file"
    );
}

/// The script as its service runs it (by its #! line), stopped if it hangs.
fn run_script(script: &Path) -> Output {
    run(Command::new("timeout").arg("300").arg(script))
}
