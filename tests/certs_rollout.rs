//! Certificate rotation: after `kinit certs renew`, what `kinit up` ships carries the renewed
//! certificates (the kubeconfigs' embedded client certificates included, checked by openssl);
//! `kinit certs renew --rollout` runs `kinit up` and renews inside it once up's lock is held on
//! every host (never before), with up's output and exit status.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use kinit::bundle::Bundle;
use kinit::engine::plan::{self, Content, PendingNote, PlanInputs, PutKind, Step};
use kinit::engine::playbook;
use support::pki::{STACKED, cluster, inventory, openssl};

fn kinit(home: &Path) -> Command {
    let mut c = Command::cargo_bin("kinit").unwrap();
    // No ~/.ssh of the machine running the tests (keys, config) is read.
    c.env_remove("KINIT_CONFIG")
        .env("HOME", home)
        .env("NO_COLOR", "1");
    c
}

const KUBECONFIGS: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/kubelet.conf",
];

/// The kubeconfigs the certificates phase of `kinit up` puts on each host, with the notes a
/// change leaves (what it restarts).
fn shipped(config: &Path) -> BTreeMap<(String, String), (Vec<u8>, Vec<PendingNote>)> {
    let inv = inventory(config);
    let book = playbook::load(None).unwrap();
    let phase = book.phases.iter().find(|p| p.certificates).unwrap();
    let mut bundle = Bundle::default();
    let mut inputs = PlanInputs {
        inventory: &inv,
        pki_dir: &inv.pki_dir,
        bundle: &mut bundle,
    };
    let mut out = BTreeMap::new();
    for host in &inv.hosts {
        for step in plan::for_host(phase, host, &[], &mut inputs).unwrap() {
            let Step::Put {
                kind: PutKind::Certificates,
                files,
            } = step
            else {
                continue;
            };
            for f in files
                .into_iter()
                .filter(|f| KUBECONFIGS.contains(&&*f.path))
            {
                let Content::Bytes(bytes) = f.content else {
                    panic!("{} not in memory", f.path)
                };
                out.insert(
                    (host.name.clone(), f.path.clone()),
                    (bytes.to_vec(), f.notes),
                );
            }
        }
    }
    out
}

/// The serial of the client certificate a kubeconfig embeds (openssl reads it), after checking
/// that the cluster CA signed it.
fn client_serial(kubeconfig: &[u8], ca: &Path, scratch: &Path) -> String {
    let embedded = kinit::pki::kubeconfig::parse(std::str::from_utf8(kubeconfig).unwrap()).unwrap();
    let pem = scratch.join("client.crt");
    std::fs::write(&pem, embedded.cert_pem).unwrap();
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        &ca.display().to_string(),
        &pem.display().to_string(),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        &pem.display().to_string(),
    ]);
    assert!(ok, "{text}");
    text.trim().trim_start_matches("serial=").to_string()
}

#[test]
fn after_renew_up_ships_kubeconfigs_with_the_renewed_client_certificates() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let cfg = c.config.display().to_string();
    let pki = c.dir.path().join("pki");
    let ca = pki.join("ca.crt");
    let out = kinit(c.dir.path())
        .args(["-c", &cfg, "certs", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before = shipped(&c.config);
    // Every host has its kubelet.conf; the control planes their own controller-manager.conf
    // and scheduler.conf, and admin.conf; super-admin.conf only the first.
    assert_eq!(before.len(), 4 + 3 * 3 + 1, "{:?}", before.keys());

    let out = kinit(c.dir.path())
        .args(["-c", &cfg, "certs", "renew", "all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = shipped(&c.config);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let operator_copy = |path: &str| {
        let name = path.trim_start_matches("/etc/kubernetes/");
        std::fs::read(pki.join(name)).ok()
    };
    for ((host, path), (bytes, notes)) in &after {
        let old = client_serial(&before[&(host.clone(), path.clone())].0, &ca, c.dir.path());
        let new = client_serial(bytes, &ca, c.dir.path());
        assert_ne!(old, new, "{host}:{path} still embeds serial {old}");
        // A shared kubeconfig is the operator's copy (what `kinit kubeconfig` hands out).
        if let Some(copy) = operator_copy(path) {
            assert_eq!(
                client_serial(&copy, &ca, c.dir.path()),
                new,
                "{host}:{path}"
            );
        }
        // The kubelet reads its client certificate once, at start.
        let restarts_kubelet = notes.contains(&PendingNote::Restart("kubelet"));
        assert_eq!(
            restarts_kubelet,
            path.ends_with("/kubelet.conf"),
            "{host}:{path}: {notes:?}"
        );
    }
}

#[test]
fn renew_rollout_runs_up_with_its_output_and_exit_status() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    // A bundle directory that does not exist: `kinit up` stops before any host is contacted
    // (no traffic leaves this machine), with up's own failure.
    let mut yaml = std::fs::read_to_string(&c.config).unwrap();
    yaml.push_str("  artifacts: {bundle: ./no-such-bundle}\n");
    std::fs::write(&c.config, yaml).unwrap();
    let cfg = c.config.display().to_string();
    let home = c.dir.path();
    let admin = c.dir.path().join("pki/admin.conf");
    assert!(
        kinit(home)
            .args(["-c", &cfg, "certs", "generate"])
            .output()
            .unwrap()
            .status
            .success()
    );

    let up = kinit(home)
        .args(["-c", &cfg, "-o", "json", "up"])
        .output()
        .unwrap();
    let before = std::fs::read(&admin).unwrap();
    let rollout = kinit(home)
        .args([
            "-c",
            &cfg,
            "-o",
            "json",
            "certs",
            "renew",
            "admin.conf",
            "--rollout",
        ])
        .output()
        .unwrap();
    assert_ne!(up.status.code(), Some(0), "{up:?}");
    assert_eq!(rollout.status.code(), up.status.code(), "{rollout:?}");
    // up stopped before its lock: nothing was renewed (a renewal waits for the cluster lock).
    assert_eq!(
        std::fs::read(&admin).unwrap(),
        before,
        "renewed without the lock"
    );

    // Each line without its time (`elapsed`, seconds into its own run), which is all two runs
    // may differ in.
    let lines = |o: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8(o.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let when = v.as_object_mut().and_then(|f| f.remove("elapsed"));
                assert!(when.is_some_and(|t| t.is_f64()), "no elapsed: {l}");
                v
            })
            .collect()
    };
    let (up_lines, rollout_lines) = (lines(&up), lines(&rollout));
    assert!(
        !rollout_lines
            .iter()
            .any(|l| l["event"] == "certificates-renewed"),
        "{rollout_lines:?}"
    );
    // Exactly what `kinit up` says on its own.
    assert_eq!(rollout_lines, up_lines);
    let failed = up_lines.last().unwrap();
    assert_eq!(failed["event"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no-such-bundle"),
        "{failed}"
    );
    let all = format!("{rollout:?}");
    assert!(!all.contains("PRIVATE KEY"), "no key material in output");

    // up's flags mean nothing without --rollout: refused, nothing renewed.
    let now = std::fs::read(&admin).unwrap();
    for flag in [
        &["--break-lock"][..],
        &["--accept-new-host-keys"],
        &["--concurrency", "2"],
        &["--ignore-preflight-errors", "all"],
    ] {
        let out = kinit(home)
            .args(["-c", &cfg, "certs", "renew", "admin.conf"])
            .args(flag)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--rollout"),
            "{out:?}"
        );
    }
    assert_eq!(std::fs::read(&admin).unwrap(), now);
}
