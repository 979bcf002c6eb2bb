//! The SSH transport when hosts misbehave, against a real OpenSSH sshd on loopback (see
//! tests/support): a directory where a file should land, a host that stops taking an upload, a
//! command that prints without end, a bastion whose connection dies.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinit::ssh::{
    ExecOptions, FileSpec, HostTarget, KEPT_OUTPUT, KeyRing, KnownHostsFile, Pool, Session,
    SshError, SshOptions,
};
use support::sshd::*;

type Setup = SshSetup;
use support::sshd::ssh_setup as setup;

impl Setup {
    fn target(&self) -> HostTarget {
        HostTarget {
            name: "h1".into(),
            address: "127.0.0.1".into(),
            port: self.sshd.port,
            user: self.user.name.clone(),
            identity_files: vec![self.key.private.clone()],
        }
    }

    fn options(&self) -> SshOptions {
        let mut o = SshOptions::new(
            Arc::new(KnownHostsFile::new(self.dir.path().join("known_hosts"))),
            Arc::new(KeyRing::new(None)),
        );
        o.agent_socket = None;
        o
    }
}

/// `mv -T`: a directory where the file should land is an error naming host and path, not a
/// directory the file is quietly moved into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_onto_a_directory_fails_and_leaves_it_alone() {
    let s = setup();
    let session = Session::connect(&s.target(), &s.options()).await.unwrap();
    let dest = s.dir.path().join("etc/kubelet.conf");
    std::fs::create_dir_all(&dest).unwrap();
    let dest_text = dest.to_str().unwrap();
    let err = session
        .upload(b"data\n", dest_text, &FileSpec::new(0o644, None))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::Upload { .. }), "{text}");
    assert!(text.contains("h1") && text.contains(dest_text), "{text}");
    assert!(dest.is_dir());
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        0,
        "nothing inside"
    );
    let beside: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 1, "no temporary file left: {beside:?}");
}

/// A host that stops taking data (its sshd stopped, the connection still open) fails the upload
/// at the time limit, with a typed error naming host and path; nothing lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_a_host_that_stops_reading_times_out() {
    let s = setup();
    let mut opts = s.options();
    opts.upload_timeout = Duration::from_secs(3);
    let session = Session::connect(&s.target(), &opts).await.unwrap();
    let dir = s.dir.path().join("stalled");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("blob").to_str().unwrap().to_string();
    let uploading = {
        let dest = dest.clone();
        tokio::spawn(async move {
            let body = vec![7u8; 64 * 1024 * 1024];
            session
                .upload(&body, &dest, &FileSpec::new(0o644, None))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&dir).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.sshd.signal_connections("STOP");
    // The limit is what ends it; 60 s only guards the test against the hang it is about.
    let result = tokio::time::timeout(Duration::from_secs(60), uploading).await;
    s.sshd.signal_connections("CONT");
    let err = result
        .expect("the upload still waits for a host that stopped reading")
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, SshError::UploadTimedOut { ref host, dest: ref d, .. } if host == "h1" && *d == dest),
        "{text}"
    );
    assert!(text.contains("timed out after 3s"), "{text}");
    assert!(!std::path::Path::new(&dest).exists());
}

/// 50 MB on stdout: the last KEPT_OUTPUT bytes are kept, the rest counted, the exit status and
/// stderr still reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_command_keeps_only_the_tail_of_its_output() {
    let s = setup();
    let session = Session::connect(&s.target(), &s.options()).await.unwrap();
    let total = 50_000_000usize;
    let out = session
        .exec(
            &format!("yes | head -c {total}; printf END; echo done >&2"),
            &ExecOptions::default(),
        )
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), KEPT_OUTPUT);
    assert!(out.stdout.ends_with(b"y\nEND"));
    assert_eq!(out.stdout_dropped, (total + 3 - KEPT_OUTPUT) as u64);
    assert_eq!(out.stderr_text(), "done\n");
    assert_eq!(out.stderr_dropped, 0);
}

/// The bastion's connection dies (its sshd killed): the next use of the pool opens a new one,
/// as for any host, instead of failing on the dead one for the rest of the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_bastion_connection_is_opened_again() {
    let s = setup();
    let jump = Bastion::start(s.dir.path(), "ed25519");
    jump.trust(&s.dir.path().join("known_hosts"));
    let mut opts = s.options();
    opts.bastion = Some(jump.target());
    let pool = Pool::new(opts);
    let first = pool.get(&s.target()).await.unwrap();
    let out = first
        .exec("echo one", &ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "one\n");

    jump.sshd.drop_connections();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !first.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the tunnelled session never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = pool.get(&s.target()).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    let out = second
        .exec("echo two", &ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "two\n");
    pool.close_all().await;
}
