//! The probe script runs on a real Linux machine (this one) and its output parses into facts that
//! match what the machine reports through other means.

use kinit::facts::HostFacts;
use kinit::facts::probe::{ProbeRequest, script};

#[test]
fn the_probe_runs_here_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let req = ProbeRequest {
        etcd_data_dir: dir.path().join("etcd data").display().to_string(),
        peers: vec![("open".into(), open), ("closed".into(), closed)],
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&req).unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    if let Ok(path) = std::env::var("KINIT_DUMP_PROBE") {
        std::fs::write(path, &text).unwrap();
    }
    let f = HostFacts::parse(&text).unwrap();

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(f.hostname, hostname.trim());
    assert_eq!(
        f.cpus as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(f.mem_total_kib > 100 * 1024, "{}", f.mem_total_kib);
    let uname = std::process::Command::new("uname")
        .arg("-r")
        .output()
        .unwrap();
    assert_eq!(f.kernel, String::from_utf8_lossy(&uname.stdout).trim());
    assert!(!f.etcd_dir.exists, "the data dir does not exist yet");
    assert!(
        f.etcd_dir.free_kib.unwrap() > 0,
        "free space measured on the nearest existing parent"
    );
    assert_eq!(f.peers.get("open"), Some(&true));
    assert_eq!(f.peers.get("closed"), Some(&false));
    assert!(
        f.listeners.iter().any(|l| l.port == open.port()),
        "ss shows our listener: {:?}",
        f.listeners
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((f.clock.unwrap() - now).abs() < 5.0);
    drop(listener);
}
