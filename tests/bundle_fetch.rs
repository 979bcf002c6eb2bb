//! `kinit bundle fetch` against a loopback mirror (127.0.0.1) in upstream's release layouts: a
//! whole bundle lands and verifies; a corrupted file, a wrong checksum file, a 404 and a
//! connection cut mid-file each end with a clear error and nothing half-written in the bundle;
//! the run after a cut resumes the download. The etcd tarball wraps the real etcd binaries of
//! `hack/build-upstream.sh`. The whole-bundle fetch serves every real program built there (it
//! fails, saying how to build them, when one is missing); the failure cases serve STAND-INS
//! (`support::bundle::stand_in`: scripts that only print their version) for everything but etcd,
//! to stay quick.
//! The real upstream hosts are never contacted.

mod support;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use support::bundle::*;

fn fetch(mirror: &Mirror, dir: &Path, extra: &[&str]) -> Output {
    Command::cargo_bin("kinit")
        .unwrap()
        .args(["bundle", "fetch"])
        .arg(dir)
        .args(["--kubernetes", KUBERNETES])
        .args(mirror.mirror_args())
        .args(extra)
        .env_remove("KINIT_CONFIG")
        .output()
        .unwrap()
}

fn kinit(args: &[&str], dir: &Path) -> Output {
    Command::cargo_bin("kinit")
        .unwrap()
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file in the bundle's top level (and cni/) is listed in SHA256SUMS with its sha256:
/// whatever a failed run left there is whole. `.partial/` may hold the unfinished download.
fn nothing_half_written(dir: &Path) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap_or_default();
    let mut walk = vec![dir.to_path_buf()];
    while let Some(d) = walk.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".partial" || rel == "SHA256SUMS" || rel == "bundle.yaml" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk.push(e.path());
                continue;
            }
            let sha = sha256(&std::fs::read(e.path()).unwrap());
            assert!(
                sums.contains(&format!("{sha}  {rel}\n")),
                "{rel} is in the bundle but not whole and listed:\n{sums}"
            );
        }
    }
}

#[test]
fn a_whole_bundle_lands_verifies_and_lists() {
    let mirror = Mirror::start(layout(true));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("24 files added"), "{said}");
    assert!(
        !dir.join(".partial").exists(),
        "the staging directory is removed"
    );
    for f in KUBE_FILES
        .iter()
        .chain(&[
            "etcd",
            "etcdctl",
            "etcdutl",
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
        ])
        .chain(&["runc", "crictl", "cni/bridge", "cni/portmap"])
    {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read(dir.join("etcd")).unwrap(),
        std::fs::read(built("etcd")).unwrap()
    );
    nothing_half_written(&dir);

    let verify = kinit(&["bundle", "verify"], &dir);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("24 files match SHA256SUMS and bundle.yaml"),
        "{}",
        text(&verify.stdout)
    );

    let list = kinit(&["-o", "json", "bundle", "list"], &dir);
    assert!(list.status.success());
    let json: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let files = json["files"].as_array().unwrap();
    let get = |n: &str| files.iter().find(|f| f["name"] == n).unwrap().clone();
    let etcd = get("etcd");
    assert_eq!(etcd["component"], "etcd");
    assert_eq!(etcd["version"], ETCD, "read from the real etcd: {etcd}");
    assert_eq!(etcd["versionFrom"], "binary");
    assert_eq!(etcd["arch"], "amd64");
    assert_eq!(get("etcdctl")["version"], ETCD);
    assert_eq!(get("kubelet")["version"], KUBERNETES);
    assert_eq!(get("cni/bridge")["component"], "cni");
    assert_eq!(get("containerd")["version"], CONTAINERD);
    // The images kinit builds from the binaries that just landed, of their binaries' releases:
    // CoreDNS and the control plane's static pods.
    assert_eq!(get("coredns")["version"], COREDNS);
    let dns = get("images/coredns.tar");
    assert_eq!(
        (dns["component"].as_str(), dns["version"].as_str()),
        (Some("coredns"), Some(COREDNS))
    );
    assert_eq!(get("images/kube-apiserver.tar")["version"], KUBERNETES);
    assert_eq!(get("images/kube-scheduler.tar")["component"], "kubernetes");
    // etcd as a static pod: its image, of the etcd release, tagged as kubeadm tags etcd's.
    let etcd_image = get("images/etcd.tar");
    assert_eq!(
        (
            etcd_image["component"].as_str(),
            etcd_image["version"].as_str()
        ),
        (Some("etcd"), Some(ETCD)),
        "{etcd_image}"
    );

    // Again: nothing is downloaded; every file is checked in place.
    let before = mirror.requests().len();
    let again = fetch(&mirror, &dir, &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("0 files added"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(mirror.requests().len(), before, "no request on a re-run");

    // A damaged file is found by verify, naming it.
    std::fs::write(dir.join("runc"), b"changed").unwrap();
    let verify = kinit(&["bundle", "verify"], &dir);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        text(&verify.stdout).contains("runc: sha256 is"),
        "{}",
        text(&verify.stdout)
    );
}

#[test]
fn a_corrupted_file_is_refused_naming_file_expected_and_actual() {
    let files = layout(false);
    let path = format!("/k8s/{KUBERNETES}/bin/linux/amd64/kube-scheduler");
    let good = sha256(&files[&path]);
    let mut bad = files[&path].clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let mirror = Mirror::start(files);
    mirror.fault(&path, Fault::Corrupt);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "kube-scheduler: sha256 is {}, but {}.sha256 says {good}",
            sha256(&bad),
            mirror.url(&path[1..])
        )),
        "{err}"
    );
    assert!(!dir.join("kube-scheduler").exists());
    assert!(
        !dir.join(".partial/kube-scheduler.part").exists(),
        "a bad download is not kept"
    );
    nothing_half_written(&dir);
}

#[test]
fn a_wrong_or_unreadable_checksum_file_is_refused() {
    let mut files = layout(false);
    let sums = format!("/etcd/{ETCD}/SHA256SUMS");
    let asset = format!("etcd-{ETCD}-linux-amd64.tar.gz");
    let wrong = "3".repeat(64);
    files.insert(sums.clone(), format!("{wrong}  {asset}\n").into_bytes());
    let mirror = Mirror::start(files);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{asset}: sha256 is {}, but {} says {wrong}",
            sha256(etcd_tarball()),
            mirror.url(&sums[1..])
        )),
        "{err}"
    );
    for f in ["etcd", "etcdctl", "etcdutl"] {
        assert!(!dir.join(f).exists(), "{f} landed");
    }
    nothing_half_written(&dir);

    // A checksum file that does not list the asset (an HTML error page served as 200).
    let crictl = format!("/crictl/{CRICTL}/crictl-{CRICTL}-linux-amd64.tar.gz.sha256");
    mirror.put(
        &sums,
        format!("{}  {asset}\n", sha256(etcd_tarball())).into_bytes(),
    );
    mirror.put(&crictl, b"<html>rate limited</html>\n".to_vec());
    let out = fetch(&mirror, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{} is not a checksum file for crictl-{CRICTL}-linux-amd64.tar.gz",
            mirror.url(&crictl[1..])
        )),
        "{err}"
    );
    assert!(!dir.join("crictl").exists());
    nothing_half_written(&dir);
}

#[test]
fn a_404_names_the_url() {
    let mirror = Mirror::start(layout(false));
    let path = format!("/runc/{RUNC}/runc.amd64");
    mirror.fault(&path, Fault::NotFound);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "GET {}: the server answered 404; check the version",
            mirror.url(&path[1..])
        )),
        "{err}"
    );
    let tries = mirror.requests().iter().filter(|s| s.path == path).count();
    assert_eq!(tries, 1, "a 404 is not retried");
    assert!(!dir.join("runc").exists());
    nothing_half_written(&dir);
}

#[test]
fn a_cut_connection_fails_clearly_and_the_next_run_resumes() {
    let mirror = Mirror::start(layout(false));
    let path = format!("/etcd/{ETCD}/etcd-{ETCD}-linux-amd64.tar.gz");
    let total = etcd_tarball().len();
    let cut = total / 2;
    mirror.fault(&path, Fault::CutAt(cut));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &["--retries", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "GET {}: the connection was cut after {cut} of {total} bytes (tried 2 times); run \
             the same command again to resume from",
            mirror.url(&path[1..])
        )),
        "{err}"
    );
    // The retry asked for the rest, not the whole file again.
    let ranges: Vec<_> = mirror
        .requests()
        .into_iter()
        .filter(|s| s.path == path)
        .map(|s| s.range)
        .collect();
    assert_eq!(ranges, [None, Some(format!("bytes={cut}-"))]);
    let part = dir.join(format!(".partial/etcd-{ETCD}-linux-amd64.tar.gz.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
    for f in ["etcd", "etcdctl", "etcdutl"] {
        assert!(!dir.join(f).exists(), "{f} landed from a cut download");
    }
    nothing_half_written(&dir);

    mirror.heal();
    let before = mirror.requests().len();
    let out = fetch(&mirror, &dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resumed: Vec<_> = mirror.requests()[before..]
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(
        resumed,
        [Some(format!("bytes={cut}-"))],
        "resumed, not restarted"
    );
    assert!(text(&out.stderr).contains(&format!(
        "resuming {} from byte {cut}",
        mirror.url(&path[1..])
    )));
    assert_eq!(
        std::fs::read(dir.join("etcd")).unwrap(),
        std::fs::read(built("etcd")).unwrap()
    );
    assert!(!part.exists());
    let verify = kinit(&["bundle", "verify"], &dir);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    // What landed before the cut was not fetched again.
    let k8s_again = mirror.requests()[before..]
        .iter()
        .filter(|s| s.path.starts_with("/k8s/") && !s.path.ends_with(".sha256"))
        .count();
    assert_eq!(k8s_again, 0);
}

#[test]
fn a_binary_of_another_release_is_refused() {
    let mut files = layout(false);
    let path = format!("/k8s/{KUBERNETES}/bin/linux/amd64/kube-proxy");
    // A STAND-IN kube-proxy of another release, with a checksum that matches it.
    let other = stand_in("kube-proxy", "Kubernetes v1.36.0", false);
    files.insert(format!("{path}.sha256"), sha256(&other).into_bytes());
    files.insert(path, other);
    let mirror = Mirror::start(files);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = fetch(&mirror, &dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "kube-proxy says it is v1.36.0, but it came from the kubernetes v1.37.2 release"
        ),
        "{err}"
    );
    assert!(!dir.join("kube-proxy").exists());
    assert!(!dir.join(".partial/kube-proxy.staged").exists());
    nothing_half_written(&dir);
}

/// The figures of README: a whole bundle of the real programs fetched from the loopback mirror
/// under `/usr/bin/time -v` (wall time, max RSS). Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn measure_a_whole_fetch() {
    let mirror = Mirror::start(layout(true));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_kinit"))
        .args(["bundle", "fetch"])
        .arg(&dir)
        .args(["--kubernetes", KUBERNETES])
        .args(mirror.mirror_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    print!("{}", text(&out.stdout));
    for line in text(&out.stderr).lines() {
        if line.contains("Elapsed (wall clock)")
            || line.contains("Maximum resident set size")
            || line.contains("User time")
            || line.contains("System time")
        {
            println!("{}", line.trim());
        }
    }
}
