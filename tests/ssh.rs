//! The SSH transport against a real OpenSSH sshd on loopback (see tests/support).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinit::ssh::{
    ExecOptions, ExitStatus, FileSpec, HostKeyPolicy, HostTarget, KeyRing, KnownHostsFile, Pool,
    Secret, Session, SshError, SshOptions, UploadOutcome,
};
use support::*;
use tempfile::TempDir;

/// Drop order matters: sshd first, then the user, then the directory.
struct Setup {
    sshd: Sshd,
    user: TestUser,
    key: ClientKey,
    known_hosts: PathBuf,
    dir: TempDir,
}

fn setup(sudo: SudoRights) -> Setup {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), sudo);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(dir.path(), &[(&user.name, &key.public)], &[]);
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    Setup {
        sshd,
        user,
        key,
        known_hosts,
        dir,
    }
}

impl Setup {
    fn target(&self, name: &str) -> HostTarget {
        HostTarget {
            name: name.into(),
            address: "127.0.0.1".into(),
            port: self.sshd.port,
            user: self.user.name.clone(),
            identity_files: vec![self.key.private.clone()],
        }
    }

    fn options(&self) -> SshOptions {
        options(&self.known_hosts)
    }

    async fn connect(&self) -> Session {
        Session::connect(&self.target("h1"), &self.options())
            .await
            .unwrap()
    }
}

fn options(known_hosts: &Path) -> SshOptions {
    let mut o = SshOptions::new(
        Arc::new(KnownHostsFile::new(known_hosts)),
        Arc::new(KeyRing::new(None)),
    );
    o.agent_socket = None;
    o
}

fn sudo() -> ExecOptions {
    ExecOptions {
        sudo: true,
        ..Default::default()
    }
}

// ---- host keys ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_an_unknown_host_and_says_how_to_trust_it() {
    let s = setup(SudoRights::None);
    std::fs::write(&s.known_hosts, "").unwrap();
    let err = Session::connect(&s.target("h1"), &s.options())
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::UnknownHostKey(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("ssh-keyscan -p {} 127.0.0.1", s.sshd.port)),
        "{text}"
    );
    assert!(text.contains("--accept-new-host-keys"), "{text}");
    assert!(text.contains("SHA256:"), "{text}");
    assert_eq!(std::fs::read_to_string(&s.known_hosts).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_learns_the_key_and_openssh_agrees() {
    let s = setup(SudoRights::None);
    std::fs::write(&s.known_hosts, "# kept\n").unwrap();
    let mut opts = s.options();
    opts.host_key_policy = HostKeyPolicy::AcceptNew;
    let session = Session::connect(&s.target("h1"), &opts).await.unwrap();
    session.close().await;
    let text = std::fs::read_to_string(&s.known_hosts).unwrap();
    assert!(text.starts_with("# kept\n"), "{text}");
    assert!(text.contains(&s.sshd.known_hosts_line()), "{text}");

    // OpenSSH, strict, with only that file, accepts the host.
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ])
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", s.known_hosts.display()))
        .arg("-i")
        .arg(&s.key.private)
        .args(["-p", &s.sshd.port.to_string()])
        .arg(format!("{}@127.0.0.1", s.user.name))
        .arg("echo agreed")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "agreed\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And kinit in strict mode now knows it too.
    Session::connect(&s.target("h1"), &s.options())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_is_refused_with_file_and_line_even_with_accept_new() {
    let s = setup(SudoRights::None);
    let other = client_key(s.dir.path(), "other_host_key", "ed25519", "");
    let other_pub = std::fs::read_to_string(&other.public).unwrap();
    let other_pub = other_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &s.known_hosts,
        format!("# one\n\n[127.0.0.1]:{} {other_pub}\n", s.sshd.port),
    )
    .unwrap();
    let mut opts = s.options();
    opts.host_key_policy = HostKeyPolicy::AcceptNew;
    let err = Session::connect(&s.target("h1"), &opts).await.unwrap_err();
    assert!(
        matches!(&err, SshError::HostKeyChanged(c) if c.line == 3),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("{}:3", s.known_hosts.display())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entries_are_accepted() {
    let s = setup(SudoRights::None);
    run(Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&s.known_hosts));
    let text = std::fs::read_to_string(&s.known_hosts).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    Session::connect(&s.target("h1"), &s.options())
        .await
        .unwrap();
}

// ---- authentication ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_files_of_each_type_authenticate() {
    let s = setup(SudoRights::None);
    for (kind, passphrase) in [
        ("ed25519", ""),
        ("ecdsa", ""),
        ("rsa", ""),
        ("ed25519", "s3cret pass"),
    ] {
        let key = client_key(
            s.dir.path(),
            &format!("k_{kind}_{}", passphrase.len()),
            kind,
            passphrase,
        );
        let auth = s.sshd.dir.join("authorized").join(&s.user.name);
        let mut keys = std::fs::read_to_string(&auth).unwrap();
        keys.push_str(&std::fs::read_to_string(&key.public).unwrap());
        std::fs::write(&auth, keys).unwrap();
        let mut opts = s.options();
        if !passphrase.is_empty() {
            opts.keys = Arc::new(KeyRing::new(Some(Secret::new(passphrase))));
        }
        let mut target = s.target("h1");
        target.identity_files = vec![key.private.clone()];
        let session = Session::connect(&target, &opts)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let out = session
            .exec("echo $USER", &ExecOptions::default())
            .await
            .unwrap();
        assert_eq!(out.stdout_text().trim(), s.user.name, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_without_passphrase_is_a_clear_error() {
    let s = setup(SudoRights::None);
    let key = client_key(s.dir.path(), "locked", "ed25519", "pw-pw-pw");
    let mut target = s.target("h1");
    target.identity_files = vec![key.private.clone()];
    let err = Session::connect(&target, &s.options()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{text}");
    assert!(
        text.contains("encrypted") && text.contains("KINIT_SSH_PASSPHRASE"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_agent_authenticates() {
    let s = setup(SudoRights::None);
    let socket = s.dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&s.key.private)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let mut opts = s.options();
    opts.agent_socket = Some(socket.clone());
    let mut target = s.target("h1");
    target.identity_files.clear();
    let result = Session::connect(&target, &opts).await;
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let session = result.unwrap();
    let out = session.exec("true", &ExecOptions::default()).await.unwrap();
    assert!(out.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_clear_error() {
    let s = setup(SudoRights::None);
    let stranger = client_key(s.dir.path(), "stranger", "ed25519", "");
    let mut target = s.target("cp7");
    target.identity_files = vec![stranger.private.clone()];
    let err = Session::connect(&target, &s.options()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{text}");
    assert!(text.contains("host cp7"), "{text}");
    assert!(
        text.contains(&format!("permission denied for user {}", s.user.name)),
        "{text}"
    );
    assert!(
        text.contains(&stranger.private.display().to_string()),
        "{text}"
    );
}

// ---- exec ----

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

// ---- sudo and uploads ----

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
fn noise(len: usize) -> Vec<u8> {
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
async fn until_uploading(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leftovers(dir).iter().any(|n| n.contains("kinit-upload")) {
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error an upload whose host went away ends with. The 60 s limit guards against the hang
/// these tests are about; it is not a speed target.
async fn failure_of<T: std::fmt::Debug>(
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

// ---- bastion ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bastion_carries_the_connection_and_has_its_own_host_key_check() {
    let s = setup(SudoRights::None);
    // The bastion: another sshd, another port, another user and key.
    let jump_user = TestUser::create(s.dir.path(), SudoRights::None);
    let jump_key = client_key(s.dir.path(), "jump_key", "ecdsa", "");
    let jump = Sshd::start(s.dir.path(), &[(&jump_user.name, &jump_key.public)], &[]);
    let bastion = HostTarget {
        name: "bastion".into(),
        address: "127.0.0.1".into(),
        port: jump.port,
        user: jump_user.name.clone(),
        identity_files: vec![jump_key.private.clone()],
    };
    let mut opts = s.options();
    opts.bastion = Some(bastion);
    // Only the target's key is known: the bastion is refused.
    let err = Session::connect(&s.target("h1"), &opts).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::Bastion { .. }), "{text}");
    assert!(text.contains("unknown host key"), "{text}");
    assert!(
        text.contains(&format!("[127.0.0.1]:{}", jump.port)),
        "{text}"
    );

    let mut known = std::fs::read_to_string(&s.known_hosts).unwrap();
    known.push_str(&jump.known_hosts_line());
    std::fs::write(&s.known_hosts, known).unwrap();
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
    let jump_user = TestUser::create(s.dir.path(), SudoRights::None);
    let jump_key = client_key(s.dir.path(), "jump_key", "ed25519", "");
    let jump = Sshd::start(s.dir.path(), &[(&jump_user.name, &jump_key.public)], &[]);
    let mut known = std::fs::read_to_string(&s.known_hosts).unwrap();
    known.push_str(&jump.known_hosts_line());
    std::fs::write(&s.known_hosts, known).unwrap();
    let mut opts = s.options();
    opts.bastion = Some(HostTarget {
        name: "bastion".into(),
        address: "127.0.0.1".into(),
        port: jump.port,
        user: jump_user.name.clone(),
        identity_files: vec![jump_key.private.clone()],
    });
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

// ---- fan-out ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sessions_in_parallel() {
    let s = setup(SudoRights::None);
    let pool = Arc::new(Pool::new(s.options()));
    let items: Vec<(String, HostTarget)> = (0..50)
        .map(|i| {
            let mut t = s.target(&format!("h{i}"));
            t.name = format!("h{i}");
            (t.name.clone(), t)
        })
        .collect();
    let cancel = tokio_util::sync::CancellationToken::new();
    let p = pool.clone();
    let results = kinit::fanout::run(items, 50, &cancel, move |t| {
        let pool = p.clone();
        async move {
            let session = pool.get(&t).await?;
            session
                .exec(&format!("echo {}", t.name), &ExecOptions::default())
                .await
        }
    })
    .await;
    assert_eq!(results.len(), 50);
    for (i, (name, result)) in results.iter().enumerate() {
        assert_eq!(name, &format!("h{i}"));
        let out = result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.stdout_text(), format!("h{i}\n"));
    }
    pool.close_all().await;
}
