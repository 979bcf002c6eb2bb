//! `kinit status` pieces against real components on loopback, without SSH: the etcd part against
//! a real 3-member etcd with kinit's PKI, the host probe script run by the local shell against a
//! real haproxy's stats socket, and the report assembled from them for the test inventory.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kinit::etcd::ClientTls;
use kinit::status::etcd::{ExpectedMember, gather};
use kinit::status::probe::{self, ProbeRequest};
use kinit::status::{KeepalivedState, assemble, certificates};

const T: Duration = Duration::from_secs(5);

fn expected(names: &[&str], urls: &[String]) -> Vec<ExpectedMember> {
    names
        .iter()
        .zip(urls)
        .map(|(n, u)| ExpectedMember {
            name: n.to_string(),
            endpoint: u.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_part_of_the_status_against_a_real_cluster() {
    let mut cluster = tokio::task::spawn_blocking(|| support::etcd::start(&["cp1", "cp2", "cp3"]))
        .await
        .unwrap();
    let tls = ClientTls::from_pki_dir(&cluster.pki_dir()).unwrap();
    let urls = cluster.endpoints();
    let names = ["cp1", "cp2", "cp3"];

    let s = gather(&expected(&names, &urls), Ok(&tls), T).await;
    assert!(s.error.is_none(), "{s:?}");
    assert!(
        s.members.iter().all(|m| m.healthy && m.in_inventory),
        "{s:?}"
    );
    assert_eq!(s.members.iter().filter(|m| m.leader).count(), 1, "{s:?}");
    assert_eq!(s.leaders.len(), 1, "{s:?}");
    assert!(
        s.missing_from_list.is_empty() && s.not_in_inventory.is_empty(),
        "{s:?}"
    );
    assert!(
        s.members
            .iter()
            .all(|m| m.version.as_deref().is_some_and(|v| v.starts_with("3.")))
    );

    // The inventory names a member etcd does not have, and lacks one etcd has.
    let dead = format!("https://127.0.0.1:{}", support::etcd::free_port());
    let mut wanted = expected(&names[..2], &urls[..2]);
    wanted.push(ExpectedMember {
        name: "cp9".into(),
        endpoint: dead.clone(),
    });
    let s = gather(&wanted, Ok(&tls), T).await;
    assert_eq!(s.missing_from_list, vec!["cp9".to_string()]);
    assert_eq!(s.not_in_inventory, vec!["cp3".to_string()]);
    let cp9 = s.members.iter().find(|m| m.name == "cp9").unwrap();
    assert!(
        !cp9.healthy && cp9.error.as_deref().unwrap().contains(&dead),
        "{cp9:?}"
    );
    // cp3 was found through the member list and asked too.
    let cp3 = s.members.iter().find(|m| m.name == "cp3").unwrap();
    assert!(cp3.healthy && !cp3.in_inventory, "{cp3:?}");

    // One member stopped: it is unhealthy, named with its endpoint; the other two keep quorum.
    cluster.members[2].stop();
    // If it led, the other two elect a new leader first (etcd's election timeout is 1 s).
    let started = Instant::now();
    let s = loop {
        let s = gather(&expected(&names, &urls), Ok(&tls), T).await;
        if s.members[..2].iter().all(|m| m.healthy) || started.elapsed() > Duration::from_secs(20) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let down = &s.members[2];
    assert!(
        !down.healthy && down.error.as_deref().unwrap().contains(&urls[2]),
        "{down:?}"
    );
    assert!(s.members[..2].iter().all(|m| m.healthy), "{s:?}");
    assert_eq!(s.leaders.len(), 1, "{s:?}");

    // No member answers: each is named with its error, and the list could not be read.
    let s = gather(&expected(&["cp3"], &urls[2..]), Ok(&tls), T).await;
    assert!(!s.members[0].healthy && s.listed_by.is_none(), "{s:?}");
    assert!(
        s.error.as_deref().unwrap().contains("no member answered"),
        "{s:?}"
    );

    // Without credentials etcd cannot be asked, and the status says why.
    let s = gather(
        &expected(&names, &urls),
        Err("no client certificate".into()),
        T,
    )
    .await;
    assert_eq!(s.error.as_deref(), Some("no client certificate"));
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_probe(req: &ProbeRequest) -> probe::HostProbe {
    let script = probe::script(req).unwrap();
    // What `Session::exec` does on a host: `sh -c SCRIPT`.
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    probe::parse(req, &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn host_probe_reads_a_real_haproxy_and_this_machines_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = up.local_addr().unwrap().port();
    let down_port = support::etcd::free_port();
    let stats = support::etcd::free_port();
    let frontend = support::etcd::free_port();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{stats} level user\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend apiserver\n    bind 127.0.0.1:{frontend}\n    default_backend apiserver\n\
             backend apiserver\n    default-server inter 200ms fall 1 rise 1\n\
             \x20   server cp1 127.0.0.1:{up_port} check\n    server cp2 127.0.0.1:{down_port} check\n"
        ),
    )
    .unwrap();
    let mut haproxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed"),
    );
    let req = ProbeRequest {
        units: vec!["kinit-status-test-absent".into()],
        haproxy_stats_port: Some(stats),
        versions: vec![],
    };
    let started = Instant::now();
    let probe = loop {
        let p = run_probe(&req);
        let settled = matches!(&p.haproxy, Some(Ok(s))
            if s.len() == 2 && s[0].status == "UP" && s[1].status == "DOWN");
        if settled || started.elapsed() > Duration::from_secs(20) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Ok(Some(exit)) = haproxy.0.try_wait() {
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        panic!(
            "haproxy exited ({exit}): {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let servers = probe.haproxy.clone().unwrap().unwrap();
    assert_eq!(
        servers
            .iter()
            .map(|s| (s.server.as_str(), s.status.as_str()))
            .collect::<Vec<_>>(),
        [("cp1", "UP"), ("cp2", "DOWN")],
        "{probe:?}"
    );
    assert!(
        servers[1]
            .check
            .as_deref()
            .is_some_and(|c| c.starts_with("L4")),
        "{servers:?}"
    );
    assert!(
        probe.addresses.contains(&"127.0.0.1".parse().unwrap()),
        "{probe:?}"
    );
    assert_eq!(probe.services.len(), 1);
    assert!(!probe.services[0].state.is_empty());
    assert_ne!(probe.services[0].state, "active");
    drop(up);

    // Nothing listens on the stats port: an error that names it.
    let closed = ProbeRequest {
        units: vec![],
        haproxy_stats_port: Some(support::etcd::free_port()),
        versions: vec![],
    };
    let e = run_probe(&closed).haproxy.unwrap().unwrap_err();
    assert!(
        e.contains(&format!("127.0.0.1:{}", closed.haproxy_stats_port.unwrap())),
        "{e}"
    );
}

#[test]
fn assembled_report_for_the_test_inventory() {
    let (dir, mut inv) = support::etcd::fresh_pki();
    let vip = inv.endpoint.address.clone();
    // Without a kubelet in the bundle, `kinit up` starts none, so none is expected.
    let cp1 = inv.host("cp1").unwrap();
    let req = kinit::status::gather::probe_request(&inv, cp1);
    assert_eq!(req.units, ["etcd", "haproxy", "keepalived"]);
    // A bundle with a kubelet and a container runtime: the kubelet must run.
    let bundle = dir.dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("SHA256SUMS"),
        format!(
            "{0}  kubelet\n{0}  containerd\n{0}  runc\n{0}  images/pause.tar\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    inv.bundle = Some(bundle);
    let ip_output = |extra: &str| {
        format!(
            "==kinit-status:addresses==\n1: lo    inet 127.0.0.1/8 scope host lo\n{extra}\
             ==kinit-status:services==\nactive\nactive\nactive\nactive\nactive\ninactive\n\
             ==kinit-status:haproxy==\n# pxname,svname,status,check_status,\napiserver,cp1,UP,L7OK,\n"
        )
    };
    let cp1 = inv.host("cp1").unwrap();
    let req = kinit::status::gather::probe_request(&inv, cp1);
    assert_eq!(
        req.units,
        [
            "etcd",
            "haproxy",
            "keepalived",
            "containerd",
            "kinit-pod-network",
            "kubelet"
        ]
    );
    let w1_req = kinit::status::gather::probe_request(&inv, inv.host("w1").unwrap());
    assert_eq!(
        (w1_req.units.as_slice(), w1_req.haproxy_stats_port),
        (
            &[
                "containerd".to_string(),
                "kinit-pod-network".to_string(),
                "kubelet".to_string()
            ][..],
            None
        )
    );
    let probes = vec![
        (
            "cp1".to_string(),
            Ok(probe::parse(
                &req,
                &ip_output(&format!(
                    "2: host0    inet {vip}/24 scope global secondary host0\n"
                )),
            )),
        ),
        ("cp2".to_string(), Ok(probe::parse(&req, &ip_output("")))),
        (
            "cp3".to_string(),
            Err("cp3 (192.168.9.13:22): connect: refused".to_string()),
        ),
    ];
    let certs = certificates::check(&inv, SystemTime::now());
    let r = assemble(&inv, Default::default(), probes, certs);
    assert_eq!(r.vip.as_ref().unwrap().holders, ["cp1"]);
    assert_eq!(r.hosts[0].keepalived, Some(KeepalivedState::Master));
    assert_eq!(r.hosts[1].keepalived, Some(KeepalivedState::Backup));
    assert!(!r.hosts[2].reachable && r.hosts[2].error.as_deref().unwrap().contains("refused"));
    assert_eq!(r.hosts[3].error.as_deref(), Some("not probed"));
    // Freshly generated: every certificate there, none close to expiry.
    let c = &r.certificates;
    assert!(
        c.error.is_none() && c.total > 10 && c.valid == c.total,
        "{c:?}"
    );
    let problems = r.problems();
    assert!(
        problems.contains(&"cp1: kubelet is inactive".to_string()),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("cp3 is unreachable")),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| p.contains("VIP")), "{problems:?}");

    // Certificates removed from the PKI dir are reported missing.
    std::fs::remove_file(
        inv.pki_dir
            .join("hosts/cp1/etc/kubernetes/pki/apiserver.crt"),
    )
    .unwrap();
    let c = certificates::check(&inv, SystemTime::now());
    assert_eq!(c.missing.len(), 1, "{c:?}");
    assert_eq!(c.missing[0].name, "apiserver (cp1)");
    // ...and a clock a few days before the end shows them expiring.
    let later = SystemTime::now() + Duration::from_secs(86_400 * 360);
    let c = certificates::check(&inv, later);
    assert!(
        !c.expiring.is_empty() && c.expiring.iter().all(|n| n.days_left.unwrap() < 30),
        "{c:?}"
    );
}
