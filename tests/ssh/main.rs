//! The SSH transport against a real OpenSSH sshd on loopback (see tests/support).

mod bastion;
mod exec;
#[path = "../support/mod.rs"]
mod support;
mod uploads;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinit::ssh::{
    ExecOptions, ExitStatus, FileSpec, HostKeyPolicy, HostTarget, KeyRing, KnownHostsFile, Pool,
    Secret, Session, SshError, SshOptions, UploadOutcome,
};
use support::sshd::*;
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

/// Logging in to `host` with only `key` fails authentication; what the error says.
async fn refused_with(s: &Setup, host: &str, key: &ClientKey) -> String {
    let mut target = s.target(host);
    target.identity_files = vec![key.private.clone()];
    let err = Session::connect(&target, &s.options()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{text}");
    text
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
    let text = refused_with(&s, "h1", &key).await;
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
    let text = refused_with(&s, "cp7", &stranger).await;
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
