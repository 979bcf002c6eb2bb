//! Lab scenarios' shared helpers: a lab that is removed when dropped, `kinit` against its
//! cluster.yaml, commands on its nodes, etcdctl with its PKI, the apiserver stand-in, polling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::hang_guard::{kinit, output_within};

mod api_loop;
mod bundles;
mod connect_loop;
mod interrupted;
mod writer;
#[allow(unused_imports)] // only the control-plane scenarios talk to the real API
pub use api_loop::{ApiLoop, ApiLoopReport, PROBE_CONFIGMAP};
#[allow(unused_imports)] // only the upgrade scenarios switch bundles
pub use bundles::{
    KUBERNETES_PROGRAMS, built, bundle_with, etcd_release_of, event_positions, release_of,
    set_kubernetes_version, start_on_previous_release, turn_timeline, upgrade_to_own_bundle,
    use_bundle,
};
#[allow(unused_imports)] // not every lab scenario goes through the VIP
pub use connect_loop::ConnectLoop;
#[allow(unused_imports)]
pub use interrupted::{RunningDrill, drill_figures};
#[allow(unused_imports)] // not every lab scenario writes while it changes the cluster
pub use writer::{Writer, WriterReport};

/// Hang guard for the commands (never a speed target).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

pub struct Lab {
    pub name: &'static str,
    pub config: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A lab that does not come down is a leak on the machine: say so, with kinit's words.
        let out = kinit(&["lab", "down", "--name", self.name]);
        let dir = std::env::var_os("KINIT_STATE_DIR")
            .map_or_else(|| PathBuf::from("/var/lib/kinit"), PathBuf::from)
            .join("labs")
            .join(self.name);
        // A passing test that leaves its lab behind fails: the leak would go unseen otherwise
        // (its output is captured). A test already failing keeps its own panic.
        if (!out.status.success() || dir.exists()) && !std::thread::panicking() {
            panic!(
                "lab {} did not come down ({} left): {}",
                self.name,
                dir.display(),
                text(&out)
            );
        }
    }
}

/// Every JSON line of stdout: with `-o json`, `up`, `reset` and `etcd snapshot restore` print
/// one event per line and their result last.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The result a `-o json` event stream ends with, which must be the event named `event`.
pub fn result_event(out: &Output, event: &str) -> Value {
    let last = json_lines(out).pop().unwrap_or(Value::Null);
    assert_eq!(last["event"], event, "the last line:\n{}", text(out));
    last
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab whose bundle is the image's etcd (3.4) alone: its apiserver is the stand-in.
pub fn lab_up(name: &'static str, subnet: &str, nodes: &str) -> Lab {
    lab_up_with(name, subnet, nodes, "image")
}

/// The binaries `hack/build-upstream.sh` built (`KINIT_TEST_UPSTREAM_BIN`, default
/// /var/cache/kinit-test/bundle-bin, as `.ci/run` builds them).
pub fn upstream_bin() -> PathBuf {
    let sets = crate::support::UPSTREAM_SETS;
    crate::support::cached_bin(
        "KINIT_TEST_UPSTREAM_BIN",
        "bundle-bin",
        "kube-apiserver",
        sets,
    )
}

/// A lab whose bundle is the real Kubernetes binaries built here: `kinit up` runs the real
/// control plane as systemd units.
pub fn lab_up_kubernetes(name: &'static str, subnet: &str, nodes: &str) -> Lab {
    let dir = upstream_bin();
    lab_up_with(name, subnet, nodes, dir.to_str().unwrap())
}

/// A lab whose nodes run containers (`--runtime`): `kinit up` runs containerd and a kubelet
/// on every node beside the real control plane.
pub fn lab_up_runtime(name: &'static str, subnet: &str, nodes: &str) -> Lab {
    let dir = upstream_bin();
    lab_up_with_args(name, subnet, nodes, dir.to_str().unwrap(), &["--runtime"])
}

fn lab_up_with(name: &'static str, subnet: &str, nodes: &str, bundle: &str) -> Lab {
    lab_up_with_args(name, subnet, nodes, bundle, &[])
}

fn lab_up_with_args(
    name: &'static str,
    subnet: &str,
    nodes: &str,
    bundle: &str,
    extra: &[&str],
) -> Lab {
    let _ = kinit(&["lab", "down", "--name", name]);
    let mut args = vec![
        "lab", "up", "--name", name, "--subnet", subnet, "--nodes", nodes, "--bundle", bundle,
    ];
    args.extend_from_slice(extra);
    let out = kinit(&args);
    assert!(out.status.success(), "lab up: {}", text(&out));
    Lab {
        name,
        config: PathBuf::from(format!("/var/lib/kinit/labs/{name}/cluster.yaml")),
    }
}

/// The apiserver stand-in's haproxy configuration (see [`Lab::start_standin`]); the key is
/// found beside the certificate (`apiserver.key`, `ssl-load-extra-del-ext`).
const STANDIN_CFG: &str = "global
    ssl-load-extra-del-ext
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend apiserver-standin
    bind :6443 ssl crt /etc/kubernetes/pki/apiserver.crt
    http-request return status 200 content-type text/plain string ok
";

impl Lab {
    pub fn dir(&self) -> &Path {
        self.config.parent().unwrap()
    }

    /// `systemctl is-active UNIT` on `node`: `active`, `inactive`, `failed`, ...
    pub fn unit_state(&self, node: &str, unit: &str) -> String {
        let out = self.ssh(node, &format!("systemctl is-active {unit}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn kinit(&self, args: &[&str]) -> Output {
        let config = self.config.to_str().unwrap();
        let mut all = vec!["-c", config];
        all.extend_from_slice(args);
        kinit(&all)
    }

    /// `kinit -o json up`: (exit code, the summary or failure event, all output).
    pub fn up(&self, extra: &[&str]) -> (i32, Value, String) {
        let mut args = vec!["-o", "json", "up"];
        args.extend_from_slice(extra);
        let out = self.kinit(&args);
        let events = json_lines(&out);
        // Every line says when it happened in the run (seconds), never earlier than the one
        // before: the figures tests and operators take from the timeline rest on it.
        let times: Vec<Option<f64>> = events.iter().map(|e| e["elapsed"].as_f64()).collect();
        assert!(
            times.iter().all(Option::is_some) && times.is_sorted(),
            "JSON lines without `elapsed` or out of order: {times:?}\n{}",
            text(&out)
        );
        let last = events.last().cloned().unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), last, text(&out))
    }

    /// A second `up` (with `extra` arguments) finds everything as it should be: it succeeds,
    /// writes no file, and starts and restarts no service. Its summary and output, for what else
    /// a test reads in them.
    pub fn assert_up_is_a_no_op(&self, extra: &[&str]) -> (Value, String) {
        let (code, summary, all) = self.up(extra);
        assert_eq!(code, 0, "second up: {all}");
        assert_eq!(
            (
                summary["filesWritten"].as_u64(),
                summary["servicesStarted"].as_u64(),
                summary["servicesRestarted"].as_u64(),
            ),
            (Some(0), Some(0), Some(0)),
            "second up changed something: {all}"
        );
        (summary, all)
    }

    /// `kinit -c CONFIG ARGS` on a pseudo-terminal of 120x40 (util-linux `script`), as an
    /// operator at a terminal runs it.
    pub fn in_a_terminal(&self, args: &[&str]) -> Output {
        let mut line = vec![
            env!("CARGO_BIN_EXE_kinit"),
            "-c",
            self.config.to_str().unwrap(),
        ];
        line.extend_from_slice(args);
        let line = shlex::try_join(line).unwrap();
        output_within(
            Command::new("script")
                .args([
                    "-qec",
                    &format!("stty cols 120 rows 40 && exec {line}"),
                    "/dev/null",
                ])
                .env_remove("NO_COLOR")
                .env_remove("KINIT_CONFIG"),
            COMMAND_LIMIT,
        )
    }

    /// `kinit lab ARGS --name <this lab>` (stop, start, status).
    pub fn kinit_lab(&self, args: &[&str]) -> Output {
        let mut all = vec!["lab"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--name", self.name]);
        kinit(&all)
    }

    pub fn ssh(&self, node: &str, script: &str) -> Output {
        kinit(&["lab", "ssh", "--name", self.name, node, "--", script])
    }

    pub fn on(&self, node: &str, script: &str) -> String {
        let out = self.ssh(node, script);
        assert!(out.status.success(), "{node}: {script}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn pki(&self, rel: &str) -> String {
        self.dir().join("pki").join(rel).display().to_string()
    }

    /// etcdctl on this machine with the generated healthcheck-client certificate (mTLS).
    pub fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> Output {
        let mut etcdctl = Command::new("etcdctl");
        etcdctl
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--cacert={}", self.pki("etcd/ca.crt")))
            .arg(format!(
                "--cert={}",
                self.pki("etcd/healthcheck-client.crt")
            ))
            .arg(format!("--key={}", self.pki("etcd/healthcheck-client.key")))
            .args(["--dial-timeout=2s", "--command-timeout=5s"])
            .args(args);
        output_within(&mut etcdctl, COMMAND_LIMIT)
    }

    pub fn vip_holders(&self, nodes: &[&str], vip: &str) -> Vec<String> {
        nodes
            .iter()
            .filter(|n| {
                let out = self.ssh(n, "ip -o addr show");
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains(&format!("inet {vip}/"))
            })
            .map(|n| n.to_string())
            .collect()
    }

    /// `kinit up --topology stacked`, then the apiserver stand-in on `nodes`, until VIP:8443
    /// answers through haproxy and `kinit status` says healthy.
    pub fn up_serving(&self, nodes: &[&str], vip: &str) {
        let (code, _, all) = self.up(&["--topology", "stacked"]);
        assert_eq!(code, 0, "up: {all}");
        for n in nodes {
            self.start_standin(n);
        }
        wait_for("VIP:8443 through haproxy", Duration::from_secs(30), || {
            self.vip_verifies(vip, 8443)
        });
        self.wait_healthy(self.config.to_str().unwrap());
    }

    /// The apiserver stand-in, where a test does not need the real one: a TLS server on 6443
    /// presenting the generated apiserver certificate and answering every request 200 (haproxy's
    /// `/readyz` check, keepalived's `/healthz` curl). haproxy rather than `openssl s_server`,
    /// which serves one connection at a time: any client that holds a connection stalls every
    /// handshake routed to it (through the VIP until haproxy's 35 s server timeout).
    pub fn start_standin(&self, node: &str) {
        self.on(
            node,
            &format!(
                "cat > /run/apiserver-standin.cfg <<'EOF'\n{STANDIN_CFG}EOF\n\
                 systemctl stop apiserver-standin 2>/dev/null; \
                 systemd-run --unit apiserver-standin haproxy -f /run/apiserver-standin.cfg"
            ),
        );
    }

    /// A TLS handshake with VIP:port whose certificate verifies against the generated CA for
    /// the VIP's address.
    pub fn vip_verifies(&self, vip: &str, port: u16) -> Result<(), String> {
        let out = output_within(
            Command::new("openssl")
                .args(["s_client", "-connect", &format!("{vip}:{port}")])
                .args(["-CAfile", &self.pki("ca.crt"), "-verify_return_error"])
                .args(["-verify_ip", vip]),
            COMMAND_LIMIT,
        );
        let all = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() && all.contains("Verify return code: 0 (ok)") {
            Ok(())
        } else {
            Err(all)
        }
    }
}

impl Lab {
    /// Rewrites the cluster.yaml's host line of `node` with `edit` (None: the line goes).
    pub fn edit_host(&self, node: &str, edit: impl Fn(&str) -> Option<String>) {
        let yaml = std::fs::read_to_string(&self.config).unwrap();
        let marker = format!("{{name: {node}, ");
        let mut out = String::new();
        for line in yaml.lines() {
            if !line.contains(&marker) {
                out.push_str(line);
                out.push('\n');
            } else if let Some(l) = edit(line) {
                out.push_str(&l);
                out.push('\n');
            }
        }
        assert_ne!(out, yaml, "no host line for {node} in {yaml}");
        std::fs::write(&self.config, out).unwrap();
    }

    /// `kinit etcd snapshot save` (verified, as it always is): the snapshot's path.
    pub fn save_snapshot(&self) -> String {
        let saved = self.kinit(&["-o", "json", "etcd", "snapshot", "save"]);
        assert!(saved.status.success(), "save: {}", text(&saved));
        result_event(&saved, "saved")["path"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `kinit -o json status`: (exit code, report).
    pub fn status(&self, config: &str) -> (i32, Value) {
        let out = kinit(&["-c", config, "-o", "json", "status"]);
        let report =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code().unwrap_or(-1), report)
    }

    /// Poll `kinit status` until it says healthy (exit 0); the last report.
    pub fn wait_healthy(&self, config: &str) -> Value {
        let mut last = Value::Null;
        wait_for(
            "kinit status to report healthy",
            Duration::from_secs(60),
            || {
                let (code, report) = self.status(config);
                last = report;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("{:#}", last["problems"]))
                }
            },
        );
        last
    }
}

pub fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report:#}"))
}

pub fn endpoints(addresses: &[&str]) -> Vec<String> {
    addresses
        .iter()
        .map(|a| format!("https://{a}:2379"))
        .collect()
}

pub fn wait_for(
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match ok() {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() > limit => panic!("{what}: not within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub fn etcd_all_healthy(lab: &Lab, eps: &[String]) -> Result<(), String> {
    let out = lab.etcdctl(eps, &["endpoint", "health"]);
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

impl Lab {
    /// `kinit kubeconfig` into the lab's dir: the admin kubeconfig (through the VIP).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        let path = self.dir().join("admin.kubeconfig");
        let _ = std::fs::remove_file(&path);
        let out = self.kinit(&["kubeconfig", path.to_str().unwrap()]);
        assert!(out.status.success(), "kubeconfig: {}", text(&out));
        path
    }

    /// The bundle's kubectl with `kubeconfig`: (success, stdout, all output).
    pub fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        let out = output_within(
            Command::new(upstream_bin().join("kubectl"))
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .arg("--request-timeout=10s")
                .args(args),
            COMMAND_LIMIT,
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            text(&out),
        )
    }

    /// `kubectl ARGS` that must succeed: its stdout.
    pub fn kubectl_ok(&self, kubeconfig: &Path, args: &[&str]) -> String {
        let (ok, stdout, all) = self.kubectl(kubeconfig, args);
        assert!(ok, "kubectl {args:?}: {all}");
        stdout
    }

    /// One property of a unit on a node (`systemctl show -P`).
    pub fn unit_property(&self, node: &str, unit: &str, property: &str) -> String {
        self.on(node, &format!("systemctl show -P {property} {unit}"))
    }
}
