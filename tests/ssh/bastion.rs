//! Connections through a bastion: its own host-key check, and a target lost behind it.

use super::uploads::{failure_of, noise, until_uploading};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bastion_carries_the_connection_and_has_its_own_host_key_check() {
    let s = setup(SudoRights::None);
    // The bastion: another sshd, another port, another user and key.
    let jump = Bastion::start(s.dir.path(), "ecdsa");
    let mut opts = s.options();
    opts.bastion = Some(jump.target());
    // Only the target's key is known: the bastion is refused.
    let err = Session::connect(&s.target("h1"), &opts).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::Bastion { .. }), "{text}");
    assert!(text.contains("unknown host key"), "{text}");
    assert!(
        text.contains(&format!("[127.0.0.1]:{}", jump.sshd.port)),
        "{text}"
    );

    jump.trust(&s.known_hosts);
    let pool = Pool::new(opts);
    let session = pool.get(&s.target("h1")).await.unwrap();
    let out = session
        .exec("echo $USER $SSH_CONNECTION", &ExecOptions::default())
        .await
        .unwrap();
    let text = out.stdout_text();
    assert!(
        text.starts_with(&format!("{} 127.0.0.1", s.user.name)),
        "{text}"
    );
    // The target saw the connection coming from the bastion's sshd, on the target's port.
    assert!(
        text.trim_end()
            .ends_with(&format!("127.0.0.1 {}", s.sshd.port)),
        "{text}"
    );
    pool.close_all().await;
}

/// Behind a bastion, the target is lost while an upload waits for it (its sshd stopped reading,
/// so the channel's window ran out, then died): the upload fails naming the host instead of
/// waiting for window space that can no longer come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_a_bastion_fails_when_the_target_goes_away() {
    let s = setup(SudoRights::Passwordless);
    let jump = Bastion::start(s.dir.path(), "ed25519");
    jump.trust(&s.known_hosts);
    let mut opts = s.options();
    opts.bastion = Some(jump.target());
    let pool = Pool::new(opts);
    let session = pool.get(&s.target("h1")).await.unwrap();
    let dir = s.dir.path().join("behind");
    std::fs::create_dir_all(&dir).unwrap();
    let uploading = {
        let dest = dir.join("blob").to_str().unwrap().to_string();
        tokio::spawn(async move {
            let body = noise(64 * 1024 * 1024);
            let spec = FileSpec::new(0o644, None);
            session.upload(&body, &dest, &spec).await
        })
    };
    until_uploading(&dir).await;
    // The target stops reading: the tunnel's buffers and window fill up. Then it dies.
    s.sshd.signal_connections("STOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.sshd.drop_connections();
    let err = failure_of(uploading).await.to_string();
    assert!(
        err.contains("h1") && err.contains("the connection was lost"),
        "{err}"
    );
    pool.close_all().await;
}
