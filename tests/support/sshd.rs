//! Test fixtures: a real OpenSSH sshd on loopback with throwaway host keys, and throwaway users.
//!
//! The sshd runs from a temporary directory (config, host keys, authorized_keys) on a free port
//! and is killed by its PID when the fixture drops. Logins use throwaway users whose shell is
//! /bin/sh: root's shell here is bash, whose ~/.bashrc (pyenv init) runs for every remote command
//! and costs ~90 ms each; /bin/sh -c reads no startup file, so the remote side starts clean.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// useradd/userdel lock /etc/passwd; tests in one binary take turns.
static USER_LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "kinit-test", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    run(&mut cmd);
}

pub use super::free_port;

/// A login user that exists only for one test.
pub struct TestUser {
    pub name: String,
    pub home: PathBuf,
    sudoers: Option<PathBuf>,
}

pub enum SudoRights {
    None,
    Passwordless,
    /// Sudo asks for this password.
    Password(String),
}

impl TestUser {
    pub fn create(dir: &Path, sudo: SudoRights) -> TestUser {
        let name = format!(
            "kt{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let home = dir.join(format!("home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        {
            let _guard = USER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            // `-p '*'`: no password, but not locked (sshd refuses locked accounts without PAM).
            run(Command::new("useradd")
                .args(["-M", "-s", "/bin/sh", "-p", "*", "-d"])
                .arg(&home)
                .arg(&name));
            if let SudoRights::Password(pw) = &sudo {
                let mut child = Command::new("chpasswd")
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                writeln!(child.stdin.take().unwrap(), "{name}:{pw}").unwrap();
                assert!(child.wait().unwrap().success());
            }
        }
        run(Command::new("chown").arg(&name).arg(&home));
        let sudoers = match sudo {
            SudoRights::None => None,
            SudoRights::Passwordless | SudoRights::Password(_) => {
                let rule = match sudo {
                    SudoRights::Passwordless => format!("{name} ALL=(ALL) NOPASSWD: ALL\n"),
                    _ => format!("{name} ALL=(ALL) ALL\n"),
                };
                let path = PathBuf::from(format!("/etc/sudoers.d/{name}"));
                std::fs::write(&path, rule).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
                Some(path)
            }
        };
        TestUser {
            name,
            home,
            sudoers,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if let Some(path) = &self.sudoers {
            let _ = std::fs::remove_file(path);
        }
        let _guard = USER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // -f: a session of this user may still be closing on the sshd side.
        for _ in 0..10 {
            let done = Command::new("userdel")
                .arg("-f")
                .arg(&self.name)
                .output()
                .is_ok_and(|o| o.status.success());
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs in a new mount namespace: `$1` sshd's config, `$2` where the overlays' upper layers go
/// (a tmpfs of the namespace), then the directories to overlay.
const SANDBOX: &str = r#"set -e
cfg=$1; layers=$2; shift 2
mount -t tmpfs -o mode=0700 kinit-test "$layers"
i=0
for d; do
  i=$((i+1)); mkdir "$layers/u$i" "$layers/w$i"
  mount -t overlay kinit-test -o "lowerdir=$d,upperdir=$layers/u$i,workdir=$layers/w$i" "$d"
done
exec /usr/sbin/sshd -D -e -f "$cfg""#;

/// One sshd process on loopback.
pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    /// `ssh-ed25519 AAAA...` of the server.
    pub host_key: String,
    child: Child,
}

impl Sshd {
    /// Listen on 127.0.0.1 and on each of `extra_addresses`, same port.
    pub fn start(dir: &Path, authorized: &[(&str, &Path)], extra_addresses: &[&str]) -> Sshd {
        Sshd::start_in(dir, authorized, extra_addresses, &[])
    }

    /// [`Sshd::start`] in a mount namespace of its own where each of `private_dirs` (existing
    /// directories) is an overlay on itself, its upper layer on a tmpfs of the namespace: what
    /// runs over this sshd reads them as they are and its writes there stay in the namespace
    /// and go with the sshd, while the rest of the machine (/run, /tmp, ...) is shared. The
    /// test reads those files through `/proc/<pid>/root` ([`Sshd::in_namespace`]). systemd is
    /// the machine's: a unit started over this sshd runs for real.
    pub fn start_sandboxed(
        dir: &Path,
        authorized: &[(&str, &Path)],
        private_dirs: &[&str],
    ) -> Sshd {
        Sshd::start_in(dir, authorized, &[], private_dirs)
    }

    /// `path` as processes of this sshd see it.
    pub fn in_namespace(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.child.id()))
    }

    fn start_in(
        dir: &Path,
        authorized: &[(&str, &Path)],
        extra_addresses: &[&str],
        private_dirs: &[&str],
    ) -> Sshd {
        let sshd_dir = dir.join(format!("sshd-{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(sshd_dir.join("authorized")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_key = sshd_dir.join("ssh_host_ed25519_key");
        keygen(&host_key, "ed25519", "");
        for (user, pubkey) in authorized {
            let text = std::fs::read_to_string(pubkey).unwrap();
            let path = sshd_dir.join("authorized").join(user);
            let mut existing = std::fs::read_to_string(&path).unwrap_or_default();
            existing.push_str(&text);
            std::fs::write(path, existing).unwrap();
        }
        for attempt in 0..5 {
            let port = free_port();
            let mut config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}/authorized/%u\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nMaxStartups 200\nMaxSessions 100\n\
                 MaxAuthTries 10\nPrintMotd no\nLogLevel ERROR\nAllowTcpForwarding yes\n",
                host_key.display(),
                sshd_dir.display()
            );
            for a in extra_addresses {
                config.push_str(&format!("ListenAddress {a}\n"));
            }
            let config_path = sshd_dir.join("sshd_config");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(sshd_dir.join("sshd.log")).unwrap();
            let mut cmd = if private_dirs.is_empty() {
                let mut cmd = Command::new("/usr/sbin/sshd");
                cmd.args(["-D", "-e", "-f"]).arg(&config_path);
                cmd
            } else {
                // unshare and sh exec: the child's pid stays the sshd listener's.
                let layers = sshd_dir.join("layers");
                std::fs::create_dir_all(&layers).unwrap();
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
                    .arg(SANDBOX)
                    .arg("sh")
                    .arg(&config_path)
                    .arg(&layers)
                    .args(private_dirs);
                cmd
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sshd (Debian package openssh-server)");
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                let host_key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
                let host_key = host_key
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Sshd {
                    port,
                    dir: sshd_dir,
                    host_key,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("sshd did not come up on port {port} (attempt {attempt})");
        }
        panic!(
            "sshd did not start; log: {}",
            std::fs::read_to_string(sshd_dir.join("sshd.log")).unwrap_or_default()
        );
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`
    /// Kill every connection's sshd processes (the listener keeps running): to the client, each
    /// connection ends as when a host goes down.
    pub fn drop_connections(&self) {
        self.signal_connections("KILL");
    }

    /// Send `signal` (a `kill` name: STOP, CONT, KILL) to every connection's sshd processes.
    pub fn signal_connections(&self, signal: &str) {
        // The connection's socket is held by a grandchild (the privilege-separated session
        // process), so the whole tree below the listener goes.
        let mut parents = vec![self.child.id().to_string()];
        let mut below = Vec::new();
        while let Some(parent) = parents.pop() {
            let out = Command::new("pgrep")
                .args(["-P", &parent])
                .output()
                .expect("pgrep");
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                parents.push(pid.to_string());
                below.push(pid.to_string());
            }
        }
        assert!(!below.is_empty(), "no connection to drop");
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&below)
            .output()
            .expect("kill");
        // A process of the tree may end between the listing and the kill (a command that just
        // finished): that one is gone anyway. Any other failure, or none signalled, is a bug.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let gone = stderr
            .lines()
            .filter(|l| l.contains("No such process"))
            .count();
        assert!(
            out.status.success() || (gone == stderr.lines().count() && gone < below.len()),
            "{out:?}"
        );
    }

    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_key)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // By PID: the Child is the sshd listener itself (-D keeps it in the foreground).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client key pair in `dir`.
pub struct ClientKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

pub fn client_key(dir: &Path, name: &str, kind: &str, passphrase: &str) -> ClientKey {
    let private = dir.join(name);
    keygen(&private, kind, passphrase);
    ClientKey {
        public: private.with_extension("pub"),
        private,
    }
}

/// World-traversable, so throwaway users can reach their home inside it.
pub fn temp_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("kinit-ssh-test")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A loopback sshd that accepts `user` (passwordless sudo) with `key`, and a known_hosts for it
/// in `dir`. Field order is drop order: sshd first, then the user, then the directory.
pub struct SshSetup {
    pub sshd: Sshd,
    pub user: TestUser,
    pub key: ClientKey,
    pub dir: TempDir,
}

pub fn ssh_setup() -> SshSetup {
    let dir = temp_dir();
    let user = TestUser::create(dir.path(), SudoRights::Passwordless);
    let key = client_key(dir.path(), "id_ed25519", "ed25519", "");
    let sshd = Sshd::start(dir.path(), &[(&user.name, &key.public)], &[]);
    std::fs::write(dir.path().join("known_hosts"), sshd.known_hosts_line()).unwrap();
    SshSetup {
        sshd,
        user,
        key,
        dir,
    }
}

/// A second sshd on loopback to jump through: its own port, user and key. Drop order matters:
/// sshd first, then the user.
pub struct Bastion {
    pub sshd: Sshd,
    pub user: TestUser,
    pub key: ClientKey,
}

impl Bastion {
    /// A bastion whose user logs in with a key of `key_type`, made in `dir`.
    pub fn start(dir: &Path, key_type: &str) -> Bastion {
        let user = TestUser::create(dir, SudoRights::None);
        let key = client_key(dir, "jump_key", key_type, "");
        let sshd = Sshd::start(dir, &[(&user.name, &key.public)], &[]);
        Bastion { sshd, user, key }
    }

    /// Its host key added to `known_hosts`.
    pub fn trust(&self, known_hosts: &Path) {
        let mut known = std::fs::read_to_string(known_hosts).unwrap();
        known.push_str(&self.sshd.known_hosts_line());
        std::fs::write(known_hosts, known).unwrap();
    }

    /// What `SshOptions::bastion` takes.
    pub fn target(&self) -> kinit::ssh::HostTarget {
        kinit::ssh::HostTarget {
            name: "bastion".into(),
            address: "127.0.0.1".into(),
            port: self.sshd.port,
            user: self.user.name.clone(),
            identity_files: vec![self.key.private.clone()],
        }
    }
}
