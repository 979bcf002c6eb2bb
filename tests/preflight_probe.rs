//! The probe script runs on a real Linux machine (this one) and its output parses into facts that
//! match what the machine reports through other means.

use kinit::facts::probe::{ProbeRequest, script};
use kinit::facts::{ConnectOutcome, HostFacts, ProbeParseError};

/// The probe's facts about this machine when none of its component ports (a port just freed)
/// is taken.
fn probe_with_no_port_taken() -> HostFacts {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let req = ProbeRequest {
        etcd_data_dir: Some("/nonexistent/etcd".into()),
        connects: Vec::new(),
        ports: vec![free.port()],
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&req).unwrap())
        .output()
        .unwrap();
    HostFacts::parse(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// The listener on `port` among those the probe listed, without holders when no `ss -p` ran.
fn listed_without_holders(f: &HostFacts, port: u16) {
    let listed = f
        .listeners
        .iter()
        .find(|l| l.port == port)
        .unwrap_or_else(|| panic!("the listener on {port} is listed: {:?}", f.listeners));
    assert!(listed.pids.is_empty(), "ss -p ran: {listed:?}");
}

/// When none of the host's component ports is taken, listeners are listed without their
/// holders (`ss -p` walks every process's descriptors: only worth it when a port is taken).
#[test]
fn holders_are_looked_up_only_when_a_component_port_is_taken() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let f = probe_with_no_port_taken();
    listed_without_holders(&f, held.local_addr().unwrap().port());
    assert!(f.processes.is_empty(), "{:?}", f.processes);
}

/// A busy host's other sockets (established, TIME-WAIT: listed after the listeners) are not
/// listeners: they must not make the probe look up holders with `ss -p`. Before this was told
/// apart, 1000 lines of /proc/net/tcp did, and every probe of a host with many connections (one
/// a benchmark had just hit 500 times) cost twice the CPU.
#[test]
fn many_connections_are_not_many_listeners() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The client closes first, so each connection stays in /proc/net/tcp as TIME-WAIT (60 s)
    // without holding a descriptor.
    for _ in 0..1100 {
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(client);
        drop(server);
    }
    let lines = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .count();
    assert!(lines > 1000, "only {lines} lines in /proc/net/tcp");
    listed_without_holders(&probe_with_no_port_taken(), addr.port());
}

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
        etcd_data_dir: Some(dir.path().join("etcd data").display().to_string()),
        connects: vec![open, closed],
        ports: vec![open.port()],
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
    let outcome = |a: std::net::SocketAddr| {
        f.reach
            .iter()
            .find(|r| r.address == a.ip().to_string() && r.port == a.port())
            .map(|r| r.outcome.clone())
    };
    assert_eq!(outcome(open), Some(ConnectOutcome::Open));
    assert_eq!(outcome(closed), Some(ConnectOutcome::Refused));
    let ours = f
        .listeners
        .iter()
        .find(|l| l.port == open.port())
        .unwrap_or_else(|| panic!("ss shows our listener: {:?}", f.listeners));
    // The probe runs as root here (as it does through sudo on hosts): it sees who listens.
    let me = std::process::id();
    assert_eq!(ours.pids, [me], "{ours:?}");
    let p = &f.processes[&me];
    assert_eq!(
        p.exe.as_deref(),
        Some(std::env::current_exe().unwrap().to_str().unwrap())
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{me}/cgroup")).unwrap();
    assert!(
        cgroup.contains(p.cgroup.as_deref().unwrap()),
        "{p:?} vs {cgroup}"
    );
    assert!(p.command.contains("preflight_probe"), "{p:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((f.clock.unwrap() - now).abs() < 5.0);
    drop(listener);
}

/// A host without bash gets a finding of its own, not a parse error: the launcher, run by a real
/// sh that finds no bash on its PATH, says so.
#[test]
fn a_host_without_bash_is_named_as_such() {
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script(&ProbeRequest::default()).unwrap())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        HostFacts::parse(&text),
        Err(ProbeParseError::NoBash),
        "{text}"
    );
}
