//! The run lock against a real OpenSSH sshd on loopback (see tests/support): racing take-overs
//! of one stale lock, and a lock of another machine with the same hostname.

mod support;

use std::path::Path;
use std::sync::Arc;

use kinit::engine::lock::{self, LockError, LockOwner};
use kinit::ssh::{HostTarget, KeyRing, KnownHostsFile, Session, SshOptions};
use support::sshd::*;

type Setup = SshSetup;
use support::sshd::ssh_setup as setup;

impl Setup {
    async fn connect(&self) -> Arc<Session> {
        let target = HostTarget {
            name: "h1".into(),
            address: "127.0.0.1".into(),
            port: self.sshd.port,
            user: self.user.name.clone(),
            identity_files: vec![self.key.private.clone()],
        };
        let mut opts = SshOptions::new(
            Arc::new(KnownHostsFile::new(self.dir.path().join("known_hosts"))),
            Arc::new(KeyRing::new(None)),
        );
        opts.agent_socket = None;
        Arc::new(Session::connect(&target, &opts).await.unwrap())
    }
}

fn plant(lock_dir: &Path, owner: &LockOwner) {
    std::fs::create_dir_all(lock_dir).unwrap();
    std::fs::write(lock_dir.join("owner"), format!("{}\n", owner.line())).unwrap();
}

fn owner_on_disk(lock_dir: &Path) -> String {
    std::fs::read_to_string(lock_dir.join("owner"))
        .unwrap()
        .trim()
        .to_string()
}

/// Two runs find the same dead owner at once: exactly one takes the lock over, the other is told
/// who holds it now, and the lock on the host is the winner's. Many rounds, so that the two
/// take-overs overlap in every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_racing_take_overs_exactly_one_wins() {
    let s = setup();
    let (a_session, b_session) = (s.connect().await, s.connect().await);
    let lock_dir = s.dir.path().join("run/up.lock");
    let dir = lock_dir.to_str().unwrap().to_string();
    let me = LockOwner::current("up");
    // This machine, a process that does not exist (above pid_max).
    let dead = LockOwner {
        pid: 9_999_999,
        ..me.clone()
    };
    for round in 0..40 {
        plant(&lock_dir, &dead);
        let a = LockOwner {
            since: 1000 + round,
            ..me.clone()
        };
        let b = LockOwner {
            since: 2000 + round,
            ..me.clone()
        };
        let (ra, rb) = tokio::join!(
            lock::take_at(&a_session, &dir, &a, false),
            lock::take_at(&b_session, &dir, &b, false)
        );
        let (winner, loser) = match (&ra, &rb) {
            (Ok(true), Err(LockError::Held(h))) => (&a, h),
            (Err(LockError::Held(h)), Ok(true)) => (&b, h),
            other => panic!("round {round}: exactly one take-over must win: {other:?}"),
        };
        assert_eq!(loser, winner, "round {round}: the loser names the winner");
        assert_eq!(owner_on_disk(&lock_dir), winner.line(), "round {round}");
        lock::release_at(&a_session, &dir, winner).await.unwrap();
        assert!(!lock_dir.exists(), "round {round}: released");
    }
}

/// A lock written on another machine with this hostname (a cloned VM): its pid means nothing
/// here, so it is a live foreign owner, refused by name, and left in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_of_another_machine_with_this_hostname_is_refused() {
    let s = setup();
    let session = s.connect().await;
    let lock_dir = s.dir.path().join("run/up.lock");
    let dir = lock_dir.to_str().unwrap().to_string();
    let me = LockOwner::current("up");
    assert!(
        !me.machine_id.is_empty(),
        "this machine has /etc/machine-id"
    );
    let clone = LockOwner {
        pid: 9_999_999,
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        ..me.clone()
    };
    plant(&lock_dir, &clone);
    let err = lock::take_at(&session, &dir, &me, false).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, LockError::Held(ref h) if *h == clone),
        "{text}"
    );
    assert!(
        text.contains(&me.operator) && text.contains("machine-id 0123456789abcdef"),
        "{text}"
    );
    assert_eq!(owner_on_disk(&lock_dir), clone.line());
    // The same lock written by this machine is stale and taken over.
    let dead_here = LockOwner {
        machine_id: me.machine_id.clone(),
        ..clone
    };
    plant(&lock_dir, &dead_here);
    assert!(lock::take_at(&session, &dir, &me, false).await.unwrap());
    assert_eq!(owner_on_disk(&lock_dir), me.line());
    lock::release_at(&session, &dir, &me).await.unwrap();
    assert!(!lock_dir.exists());
}
