//! kinit's etcd client against a real 3-member etcd (Debian's etcd-server) on loopback, run with
//! the certificates kinit generated, mutual TLS on the client port.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kinit::etcd::{self, ClientTls, EtcdError};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn talks_to_a_real_cluster_over_mutual_tls() {
    let mut cluster = tokio::task::spawn_blocking(|| support::etcd::start(&["cp1", "cp2", "cp3"]))
        .await
        .unwrap();
    let tls = ClientTls::from_pki_dir(&cluster.pki_dir()).unwrap();
    let endpoints = cluster.endpoints();

    for ep in &endpoints {
        assert!(etcd::health(&tls, ep, T).await.unwrap(), "{ep} not healthy");
    }

    // Every member follows the same leader, which is one of them; ids are distinct.
    let mut statuses = Vec::new();
    for ep in &endpoints {
        statuses.push(etcd::status(&tls, ep, T).await.unwrap());
    }
    let ids: BTreeSet<u64> = statuses.iter().map(|s| s.member_id).collect();
    assert_eq!(ids.len(), 3, "{statuses:?}");
    let leader = statuses[0].leader;
    assert!(ids.contains(&leader), "{statuses:?}");
    assert!(statuses.iter().all(|s| s.leader == leader), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| s.version.starts_with("3.") && s.db_size > 0 && s.raft_term > 0)
    );

    // The member list names the members with the URLs they were started with.
    let members = etcd::member_list(&tls, &endpoints[1], T).await.unwrap();
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["cp1", "cp2", "cp3"]));
    let listed_ids: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
    assert_eq!(listed_ids, ids);
    for m in &cluster.members {
        let listed = members.iter().find(|x| x.name == m.name).unwrap();
        assert_eq!(listed.client_urls, vec![m.client_url.clone()]);
    }

    // A write through one member is read back through another.
    etcd::put(
        &tls,
        &endpoints[0],
        b"/kinit/status-test",
        b"replicated \x00 bytes",
        T,
    )
    .await
    .unwrap();
    assert_eq!(
        etcd::get(&tls, &endpoints[2], b"/kinit/status-test", T)
            .await
            .unwrap(),
        Some(b"replicated \x00 bytes".to_vec())
    );
    assert_eq!(
        etcd::get(&tls, &endpoints[2], b"/kinit/absent", T)
            .await
            .unwrap(),
        None
    );

    // The generic probe: /health with the client certificate answers 200.
    let (ca, crt, key) = cluster.operator_credentials();
    let (code, body) = etcd::https_get(
        &format!("{}/health", endpoints[0]),
        &ca,
        Some((&crt, &key)),
        None,
        T,
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"health\":\"true\""));
    // Verified against a name the server certificate does not carry: refused.
    let e = etcd::https_get(
        &format!("{}/health", endpoints[0]),
        &ca,
        Some((&crt, &key)),
        Some("10.9.9.9"),
        T,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, EtcdError::ServerNotTrusted { .. }), "{e}");

    // A client certificate from another cluster's etcd CA is refused by the server.
    let (_other_dir, other) = support::etcd::fresh_pki();
    let (other_ca, other_crt, other_key) = support::etcd::read_credentials(&other.pki_dir);
    let foreign = ClientTls::from_pem(&ca, &other_crt, &other_key).unwrap();
    let e = etcd::health(&foreign, &endpoints[0], T).await.unwrap_err();
    assert!(matches!(e, EtcdError::ClientRefused { .. }), "{e}");
    assert!(e.to_string().contains(&endpoints[0]), "{e}");
    // So is a client without a certificate.
    let anonymous = ClientTls::without_client_cert(&ca).unwrap();
    let e = etcd::status(&anonymous, &endpoints[0], T)
        .await
        .unwrap_err();
    assert!(matches!(e, EtcdError::ClientRefused { .. }), "{e}");

    // Trusting another CA, we refuse the server.
    let wrong_ca = ClientTls::from_pem(&other_ca, &crt, &key).unwrap();
    let e = etcd::member_list(&wrong_ca, &endpoints[0], T)
        .await
        .unwrap_err();
    assert!(matches!(e, EtcdError::ServerNotTrusted { .. }), "{e}");
    assert!(e.to_string().contains(&endpoints[0]), "{e}");

    // A stopped member: an error naming it, well within the timeout; the others still serve.
    cluster.members[2].stop();
    let started = Instant::now();
    let e = etcd::health(&tls, &endpoints[2], T).await.unwrap_err();
    assert!(started.elapsed() < T, "took {:?}", started.elapsed());
    assert_eq!(e.endpoint(), Some(endpoints[2].as_str()), "{e}");
    assert!(matches!(e, EtcdError::Connect { .. }), "{e}");
    // (Its health may be false for a moment while the other two elect a leader.)
    assert!(etcd::status(&tls, &endpoints[0], T).await.is_ok());
    drop(cluster);
}

/// A server that accepts the connection and never says anything: the call gives up at the
/// deadline and names the endpoint.
#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let (_dir, inv) = support::etcd::fresh_pki();
    let tls = ClientTls::from_pki_dir(&inv.pki_dir).unwrap();
    let limit = Duration::from_millis(400);
    let started = Instant::now();
    let e = etcd::health(&tls, &url, limit).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, EtcdError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert!(took >= limit && took < limit * 10, "took {took:?}");
    hold.abort();
}

#[test]
fn missing_credentials_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = ClientTls::from_pki_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("etcd/ca.crt"), "{e}");
    assert!(e.contains("kinit certs generate"), "{e}");
}
