//! A real etcd started from the rendered unit's and static pod's command lines, on loopback
//! with test certificates.

use std::net::TcpListener;
use std::process::{Child, Stdio};

use kinit::render::{self, Templates};

use super::support::render::{fixture, inventory_from};
use super::*;

/// Kills the etcd it holds when dropped, so a failed assertion leaves no process behind.
pub(super) struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn openssl(dir: &Path, args: &[&str]) {
    let out = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A stand-in for kinit's PKI (built on another branch): an etcd CA, server and peer
/// certificates for 127.0.0.1, and a client certificate, at the host paths etcd is configured with.
pub(super) fn make_etcd_certs(root: &Path) {
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

pub(super) fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

pub(super) fn under(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

pub(super) fn etcdctl_health(root: &Path, endpoint: &str, client_cert: bool) -> Output {
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

pub(super) fn http_get(port: u16, path: &str) -> String {
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
pub(super) struct EtcdHost {
    pub(super) tmp: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) data_dir: String,
    pub(super) ports: [u16; 3],
}

impl EtcdHost {
    pub(super) fn new(mode: kinit::config::EtcdMode) -> Self {
        Self::with_snapshots(mode, None)
    }

    /// With `spec.etcd.snapshots` keeping `keep` in `<tmp>/snapshots` when given.
    pub(super) fn with_snapshots(mode: kinit::config::EtcdMode, keep: Option<u32>) -> Self {
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

    pub(super) fn relocate(&self, text: &str) -> String {
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
    pub(super) fn start(&self, args: &[String]) -> Running {
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
    pub(super) fn start_and_check(&self, args: &[String]) {
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
pub(super) fn systemd_etcd_args(host: &EtcdHost) -> Vec<String> {
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
pub(super) fn the_rendered_etcd_unit_starts_a_real_etcd_with_client_cert_auth() {
    let host = EtcdHost::new(kinit::config::EtcdMode::Systemd);
    host.start_and_check(&systemd_etcd_args(&host));
}

#[test]
pub(super) fn the_rendered_etcd_static_pod_command_starts_a_real_etcd() {
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
