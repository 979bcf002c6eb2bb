//! How long `kinit render` takes for a 3 control-plane + 3 etcd + 50 worker cluster (external
//! topology, systemd etcd, haproxy-keepalived, chrony): parsing the templates, rendering every
//! host's files, and writing them with their manifests.
//!
//! Run: `cargo bench --bench render` (release profile). Prints min / median per step.

use std::path::Path;
use std::time::{Duration, Instant};

use kinit::config::{self, Topology, template::InitShape};
use kinit::inventory::Inventory;
use kinit::render::{self, Templates, write};

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    f(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name:<48} min {:>9.3} ms   median {:>9.3} ms   ({runs} runs)",
        times[0].as_secs_f64() * 1e3,
        times[runs / 2].as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once as a smoke test.
    let runs = |n: usize| {
        if std::env::args().any(|a| a == "--bench") {
            n
        } else {
            1
        }
    };
    let shape = InitShape {
        topology: Topology::External,
        control_planes: 3,
        workers: 50,
        etcd_hosts: 3,
    };
    let text = config::template::render(shape)
        .unwrap()
        .replace("servers: []", "servers: [0.pool.ntp.org, 1.pool.ntp.org]");
    let (cfg, report) = config::check(Path::new("bench.yaml"), text);
    assert!(!report.has_errors());
    let inv = Inventory::from_config(&cfg.unwrap(), Path::new("."), None).unwrap();
    assert_eq!(inv.hosts.len(), 56);
    let templates = Templates::embedded().unwrap();
    let files: usize = render::render_all(&inv, &templates)
        .unwrap()
        .iter()
        .map(|(_, f)| f.len())
        .sum();
    println!("cluster: 3 control-plane + 3 etcd + 50 workers = 56 hosts, {files} files");

    measure("parse the embedded templates", runs(200), || {
        std::hint::black_box(Templates::embedded().unwrap());
    });
    measure("render every host (pure)", runs(200), || {
        std::hint::black_box(render::render_all(&inv, &templates).unwrap());
    });
    let dir = tempfile::tempdir().unwrap();
    measure(
        "templates + render + write files and manifests",
        runs(50),
        || {
            let templates = Templates::embedded().unwrap();
            for (host, files) in render::render_all(&inv, &templates).unwrap() {
                write::write_host(dir.path(), &host, &files).unwrap();
            }
        },
    );
}
