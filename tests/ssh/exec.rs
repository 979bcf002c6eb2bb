//! Commands over a session: exit codes, stderr, signals, timeouts.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_reports_exit_codes_stderr_and_signals() {
    let s = setup(SudoRights::None);
    let session = s.connect().await;
    let out = session
        .exec("echo out; echo err >&2; exit 7", &ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(7));
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
    let out = session
        .exec("kill -TERM $$", &ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Signal("TERM".into()));
    // Several channels at once on the one connection.
    let plain = ExecOptions::default();
    let (a, b, c) = tokio::join!(
        session.exec("sleep 0.3; echo a", &plain),
        session.exec("sleep 0.3; echo b", &plain),
        session.exec("sleep 0.3; echo c", &plain),
    );
    assert_eq!(
        [
            a.unwrap().stdout_text(),
            b.unwrap().stdout_text(),
            c.unwrap().stdout_text()
        ],
        ["a\n", "b\n", "c\n"]
    );
}

fn processes_matching(pattern: &str) -> String {
    let out = Command::new("pgrep")
        .args(["-a", "-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_over_its_timeout_is_stopped_on_the_host() {
    let s = setup(SudoRights::Passwordless);
    let session = s.connect().await;
    let marker = format!("1{}.5", std::process::id());
    for as_root in [false, true] {
        let started = Instant::now();
        let err = session
            .exec(
                &format!("sleep {marker}; echo never"),
                &ExecOptions {
                    timeout: Some(Duration::from_millis(800)),
                    sudo: as_root,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, SshError::CommandTimedOut { .. }), "{err}");
        assert!(err.to_string().contains("host h1"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The remote sleep is gone (the "host" is this machine).
        let mut left = processes_matching(&format!("sleep {marker}"));
        let deadline = Instant::now() + Duration::from_secs(3);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = processes_matching(&format!("sleep {marker}"));
        }
        assert_eq!(left, "", "as_root={as_root}");
    }
}
