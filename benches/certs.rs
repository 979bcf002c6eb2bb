//! `cargo bench --bench certs`: the full PKI for 3 control-plane + 3 etcd + 10 worker hosts,
//! kinit against Debian's cfssl producing the same certificates from the same certs/*.json, for
//! ECDSA P-256 and RSA-2048. cfssl runs as the blog posts run it: one `cfssl gencert | cfssljson
//! -bare` per certificate. kinit also writes the kubeconfigs and every host's tree, which cfssl
//! does not. Prints a table; asserts nothing (targets are read off the figures).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use kinit::config::KeyAlgorithm;
use kinit::inventory::Inventory;
use kinit::pki::{self, CaId, Mode, profiles::Profiles};

fn config(dir: &Path, algorithm: &str) -> std::path::PathBuf {
    let mut yaml = format!(
        "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {{name: bench}}\nspec:\n  topology: external\n  kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {{address: 10.0.0.100, port: 8443}}\n  pki: {{dir: ./pki, keyAlgorithm: {algorithm}}}\n  hosts:\n"
    );
    for i in 1..=3 {
        yaml.push_str(&format!(
            "    - {{name: cp{i}, address: 10.0.0.{i}, roles: [control-plane]}}\n"
        ));
        yaml.push_str(&format!(
            "    - {{name: etcd{i}, address: 10.0.0.{}, roles: [etcd]}}\n",
            10 + i
        ));
    }
    for i in 1..=10 {
        yaml.push_str(&format!(
            "    - {{name: w{i}, address: 10.0.0.{}, roles: [worker]}}\n",
            20 + i
        ));
    }
    let path = dir.join(format!("{algorithm}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn inventory(path: &Path) -> Inventory {
    let loaded = kinit::config::load(path).unwrap();
    Inventory::from_config(&loaded.config, path.parent().unwrap(), None).unwrap()
}

fn kinit_once(inv: &Inventory) -> Duration {
    let _ = std::fs::remove_dir_all(&inv.pki_dir);
    let start = Instant::now();
    pki::generate(inv, &Mode::Generate, SystemTime::now()).unwrap();
    start.elapsed()
}

/// The cfssl commands for the whole table, run in `dir` (CSR files written beforehand).
fn cfssl_script(dir: &Path, inv: &Inventory, key: KeyAlgorithm) -> (String, usize) {
    let profiles = Profiles::embedded().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca-config.json"),
        dir.join("ca-config.json"),
    )
    .unwrap();
    let mut script = String::from("set -e\n");
    let mut count = 0;
    for id in CaId::ALL {
        let csr = profiles.csr(id.csr()).unwrap();
        let sans: Vec<pki::San> = csr.hosts.iter().map(|h| pki::San::parse(h)).collect();
        let json = pki::cfssl::csr_json(&csr.cn, &csr.organizations(), &sans, key, Some("87600h"));
        std::fs::write(dir.join(format!("{}-csr.json", id.name())), json).unwrap();
        script.push_str(&format!(
            "cfssl gencert -initca {0}-csr.json 2>/dev/null | cfssljson -bare {0}\n",
            id.name()
        ));
        count += 1;
    }
    for (i, spec) in pki::certificates(inv, &profiles)
        .unwrap()
        .iter()
        .enumerate()
    {
        let json = pki::cfssl::csr_json(
            &spec.common_name,
            &spec.organizations,
            &spec.sans,
            key,
            None,
        );
        let name = format!("leaf{i}");
        std::fs::write(dir.join(format!("{name}-csr.json")), json).unwrap();
        script.push_str(&format!(
            "cfssl gencert -ca {ca}.pem -ca-key {ca}-key.pem -config ca-config.json -profile {p} {name}-csr.json 2>/dev/null | cfssljson -bare {name}\n",
            ca = spec.ca.name(),
            p = spec.profile
        ));
        count += 1;
    }
    (script, count)
}

fn cfssl_once(dir: &Path, script: &str) -> Duration {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pem" || x == "csr") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(status.success(), "cfssl failed");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("certs benchmark: run it with `cargo bench --bench certs`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let have_cfssl = Command::new("cfssl").arg("version").output().is_ok();
    println!("full PKI, 3 control-plane + 3 etcd + 10 workers (external etcd); median of N runs");
    println!(
        "{:<12} {:>6} {:>12} {:>6} {:>12} {:>9}",
        "algorithm", "certs", "kinit", "files", "cfssl", "speedup"
    );
    for (name, key, kinit_runs, cfssl_runs) in [
        ("ecdsa-p256", KeyAlgorithm::EcdsaP256, 15, 5),
        ("rsa-2048", KeyAlgorithm::Rsa2048, 5, 2),
    ] {
        // KINIT_BENCH_ALGOS=ecdsa-p256 measures one algorithm only.
        if std::env::var("KINIT_BENCH_ALGOS").is_ok_and(|only| !only.split(',').any(|a| a == name))
        {
            continue;
        }
        let inv = inventory(&config(tmp.path(), name));
        kinit_once(&inv); // warm-up: page cache, lazy statics
        let kinit = median((0..kinit_runs).map(|_| kinit_once(&inv)).collect());
        let files = walk(&inv.pki_dir);
        let certs = pki::certificates(&inv, &Profiles::embedded().unwrap())
            .unwrap()
            .len()
            + 3;
        let (cfssl, speedup) = if have_cfssl {
            let dir = tmp.path().join(format!("cfssl-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            let (script, n) = cfssl_script(&dir, &inv, key);
            assert_eq!(n, certs);
            let t = median((0..cfssl_runs).map(|_| cfssl_once(&dir, &script)).collect());
            (
                format!("{:.3} s", t.as_secs_f64()),
                format!("{:.1}x", t.as_secs_f64() / kinit.as_secs_f64()),
            )
        } else {
            ("(no cfssl)".into(), "-".into())
        };
        println!(
            "{:<12} {:>6} {:>10.1}ms {:>6} {:>12} {:>9}   (one key: {:.2} ms; {} cores)",
            name,
            certs,
            kinit.as_secs_f64() * 1000.0,
            files,
            cfssl,
            speedup,
            keygen_ms(key, if name.starts_with("rsa") { 10 } else { 200 }),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
}

/// One key at a time, to show what bounds the RSA figure: key generation itself.
fn keygen_ms(algorithm: KeyAlgorithm, n: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        pki::algorithm::generate(algorithm).unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
