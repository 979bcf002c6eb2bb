use super::*;

/// A wait that could go on for an hour stops when the run is cancelled, whether the token
/// fires during an attempt (a TLS handshake a loopback listener never answers) or between
/// two (a loopback port that refuses at once). Loopback only: a test sends no traffic
/// anywhere else.
#[tokio::test]
async fn a_cancelled_run_stops_its_wait() {
    // Bound, not listening: connecting is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = closed.local_addr().unwrap();
    drop(closed);
    // Accepts and holds every connection without a byte of answer.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    // Any parsable CA: the handshake never gets far enough to check one.
    let ca = rcgen::generate_simple_self_signed(vec!["kinit-test".to_string()])
        .unwrap()
        .cert
        .pem();
    let long = Duration::from_secs(3600);
    for case in ["refused", "unanswered"] {
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stopper.cancel();
        });
        let waiting = async {
            if case == "refused" {
                tcp(vec![("h1".into(), refused)], long, &cancel).await
            } else {
                let loopback = vec![("h1".into(), refused.ip())];
                https(
                    loopback,
                    silent_port,
                    "/readyz",
                    ca.as_bytes(),
                    long,
                    &cancel,
                )
                .await
            }
        };
        // A hang guard, far beyond the cancel: not a speed target.
        let waited = tokio::time::timeout(Duration::from_secs(120), waiting)
            .await
            .expect("the wait ignored the cancel");
        assert!(
            matches!(waited, Err(WaitError::Cancelled)),
            "{case}: {waited:?}"
        );
    }
}

#[test]
fn the_vip_is_found_in_ip_output() {
    let out = "1: lo    inet 127.0.0.1/8 scope host lo\n2: host0    inet 10.213.0.11/24 brd 10.213.0.255 scope global host0\n2: host0    inet 10.213.0.100/24 scope global secondary host0\n";
    assert!(holds(out, "10.213.0.100".parse().unwrap()));
    assert!(!holds(out, "10.213.0.10".parse().unwrap()));
    assert!(!holds("", "10.213.0.100".parse().unwrap()));
}
