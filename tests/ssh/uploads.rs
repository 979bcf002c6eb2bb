//! sudo and uploads: root-owned files with the mode asked, sudo's modes, large and re-run
//! uploads, and uploads that are interrupted or whose host goes away.

use super::*;

fn stat(path: &Path) -> String {
    let out = run(Command::new("stat").args(["-c", "%U:%G %a"]).arg(path));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_through_sudo_land_root_owned_with_the_mode_asked() {
    let s = setup(SudoRights::Passwordless);
    let session = s.connect().await;
    let out = session.exec("id -u", &sudo()).await.unwrap();
    assert_eq!(out.stdout_text(), "0\n");
    let dest = s.dir.path().join("etc/kinit test/pki/ca.key");
    let dest_text = dest.to_str().unwrap();
    let spec = FileSpec::new(0o600, Some("root:root"));
    let outcome = session.upload(b"secret\n", dest_text, &spec).await.unwrap();
    assert_eq!(outcome, UploadOutcome::Written);
    assert_eq!(std::fs::read(&dest).unwrap(), b"secret\n");
    assert_eq!(stat(&dest), "root:root 600");
    assert_eq!(stat(dest.parent().unwrap()), "root:root 755");
    // Same bytes, mode and owner: nothing sent.
    let again = session.upload(b"secret\n", dest_text, &spec).await.unwrap();
    assert_eq!(again, UploadOutcome::Unchanged);
    // A different mode is a change.
    let spec = FileSpec::new(0o640, Some("root"));
    let changed = session.upload(b"secret\n", dest_text, &spec).await.unwrap();
    assert_eq!(changed, UploadOutcome::Written);
    assert_eq!(stat(&dest), "root:root 640");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_without_rights_or_password_fails_fast() {
    let s = setup(SudoRights::Password("pw-for-sudo-1".into()));
    let session = s.connect().await;
    let started = Instant::now();
    let err = session.exec("id -u", &sudo()).await.unwrap_err();
    assert!(
        matches!(err, SshError::SudoPasswordRequired { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("KINIT_SUDO_PASSWORD"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut opts = s.options();
    opts.sudo_password = Some(Secret::new("wrong"));
    let session = Session::connect(&s.target("h1"), &opts).await.unwrap();
    let err = session.exec("id -u", &sudo()).await.unwrap_err();
    assert!(
        matches!(err, SshError::SudoPasswordRejected { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_with_a_password_runs_as_root_and_uploads() {
    let s = setup(SudoRights::Password("pw-for-sudo-2".into()));
    let mut opts = s.options();
    opts.sudo_password = Some(Secret::new("pw-for-sudo-2"));
    let session = Session::connect(&s.target("h1"), &opts).await.unwrap();
    let out = session.exec("id -u; cat", &sudo()).await.unwrap();
    // The password went to sudo, not to the command's stdin.
    assert_eq!(out.stdout_text(), "0\n");
    let dest = s.dir.path().join("pw/file");
    let body = b"payload, not the password\n";
    session
        .upload(
            body,
            dest.to_str().unwrap(),
            &FileSpec::new(0o644, Some("root")),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(stat(&dest), "root:root 644");
}

/// A session's first root command goes with `sudo -n` before sudo's mode is known; a status of 1
/// is then either the command's own or sudo's refusal, and the command must run exactly once
/// either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_root_command_runs_once_whatever_sudo_wants() {
    let s = setup(SudoRights::Passwordless);
    let session = s.connect().await;
    let ran = s.dir.path().join("ran-passwordless");
    let line = format!("id -u >> '{}'; exit 1", ran.display());
    let out = session.exec(&line, &sudo()).await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(1), "the command's own status");
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "0\n",
        "ran once, as root"
    );

    let s = setup(SudoRights::Password("pw-for-sudo-3".into()));
    let mut opts = s.options();
    opts.sudo_password = Some(Secret::new("pw-for-sudo-3"));
    let session = Session::connect(&s.target("h1"), &opts).await.unwrap();
    let ran = s.dir.path().join("ran-with-password");
    let line = format!("id -u >> '{}'; cat", ran.display());
    let out = session.exec(&line, &sudo()).await.unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    assert_eq!(
        out.stdout_text(),
        "",
        "the password went to sudo, not to the command"
    );
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "0\n",
        "ran once, as root"
    );
}

/// Deterministic bytes that do not compress.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_arrive_intact_and_a_reupload_is_skipped() {
    let s = setup(SudoRights::Passwordless);
    let session = s.connect().await;
    let body = noise(10 * 1024 * 1024);
    let dest = s.dir.path().join("big/blob");
    let spec = FileSpec::new(0o644, None);
    let first = session
        .upload(&body, dest.to_str().unwrap(), &spec)
        .await
        .unwrap();
    assert_eq!(first, UploadOutcome::Written);
    let landed = std::fs::read(&dest).unwrap();
    assert_eq!(landed.len(), body.len());
    assert!(landed == body);
    let second = session
        .upload(&body, dest.to_str().unwrap(), &spec)
        .await
        .unwrap();
    assert_eq!(second, UploadOutcome::Unchanged);
}

/// Yields `n` bytes, then never finishes (a connection that stalls mid-transfer).
struct Stalling {
    left: usize,
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(self.left);
        buf.put_slice(&vec![b'x'; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Until the remote side is writing an upload's temporary file in `dir`.
pub(crate) async fn until_uploading(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(dir).iter().any(|n| n.contains("kinit-upload")) {
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error an upload whose host went away ends with. The 60 s limit guards against the hang
/// these tests are about; it is not a speed target.
pub(crate) async fn failure_of<T: std::fmt::Debug>(
    upload: tokio::task::JoinHandle<Result<T, SshError>>,
) -> SshError {
    tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the upload still waits after its host is gone")
        .unwrap()
        .expect_err("an upload to a host that is gone cannot succeed")
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_leaves_nothing_at_the_destination() {
    let s = setup(SudoRights::Passwordless);
    let dir = s.dir.path().join("partial");
    let dest = dir.join("file");
    // An old version must survive untouched.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&dest, "old\n").unwrap();
    let session = s.connect().await;
    let mut reader = Stalling {
        left: 3 * 1024 * 1024,
    };
    let sha = "0".repeat(64);
    let spec = FileSpec::new(0o644, None);
    let upload = session.upload_from(&mut reader, &sha, dest.to_str().unwrap(), &spec);
    let cut = tokio::time::timeout(Duration::from_secs(2), upload).await;
    assert!(cut.is_err(), "the stalled upload cannot finish");
    // A temporary file is there mid-transfer...
    assert!(
        leftovers(&dir).iter().any(|n| n.contains("kinit-upload")),
        "{:?}",
        leftovers(&dir)
    );
    // ...and the connection drops.
    session.close().await;
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(5);
    while leftovers(&dir).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(&dir), ["file"]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old\n");
}

/// The host goes away while an upload is in flight (here: its body stalls, as a window the
/// server never grows would): the upload fails with the host named instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_fails_when_the_host_goes_away_mid_transfer() {
    let s = setup(SudoRights::Passwordless);
    let dir = s.dir.path().join("lost");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("file");
    let session = std::sync::Arc::new(s.connect().await);
    let uploading = {
        let session = session.clone();
        let dest = dest.to_str().unwrap().to_string();
        tokio::spawn(async move {
            let mut reader = Stalling {
                left: 3 * 1024 * 1024,
            };
            let spec = FileSpec::new(0o644, None);
            session
                .write_from(&mut reader, &"0".repeat(64), &dest, &spec)
                .await
        })
    };
    // The remote side is writing the temporary file when the connection drops.
    until_uploading(&dir).await;
    s.sshd.drop_connections();
    let err = failure_of(uploading).await.to_string();
    assert!(
        err.contains("h1") && err.contains("the connection was lost"),
        "{err}"
    );
}
