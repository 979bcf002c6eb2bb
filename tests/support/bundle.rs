//! A loopback HTTP mirror (127.0.0.1 only) serving binaries in upstream's release layouts, with
//! faults to inject, and the binaries it serves: the real etcd (and Kubernetes, when built)
//! programs of `hack/build-upstream.sh`, and named stand-ins for what is not built here yet.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub const KUBERNETES: &str = "v1.37.2";
pub const ETCD: &str = "v3.6.16";
pub const CONTAINERD: &str = "v2.4.2";
pub const RUNC: &str = "v1.5.3";
pub const CNI: &str = "v1.10.0";
pub const CRICTL: &str = "v1.37.0";
pub const COREDNS: &str = "v1.15.0";
pub const KUBE_FILES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];

/// A binary built by `hack/build-upstream.sh`; a test that needs one fails when it is missing.
pub fn built(name: &str) -> PathBuf {
    let sets = crate::support::UPSTREAM_SETS;
    crate::support::cached_bin("KINIT_TEST_UPSTREAM_BIN", "bundle-bin", name, sets).join(name)
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A STAND-IN for a program not built here yet: a script whose only behaviour is printing the
/// version line the real one prints (on stdout, or stderr as CNI plugins do).
pub fn stand_in(what: &str, line: &str, stderr: bool) -> Vec<u8> {
    format!(
        "#!/bin/sh\n# STAND-IN for {what}: only prints its version\necho '{line}'{}\n",
        if stderr { " >&2" } else { "" }
    )
    .into_bytes()
}

pub fn tar_gz(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        // Programs are executable; LICENSE and README files are not (as upstream ships them).
        let doc = name.ends_with("LICENSE") || name.ends_with(".md");
        h.set_mode(if doc { 0o644 } else { 0o755 });
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// The etcd release tarball around the real binaries (made once per test binary).
pub fn etcd_tarball() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = format!("etcd-{ETCD}-linux-amd64");
        let entries: Vec<_> = ["etcd", "etcdctl", "etcdutl"]
            .iter()
            .map(|f| (format!("{dir}/{f}"), std::fs::read(built(f)).unwrap()))
            .collect();
        let mut all = vec![(format!("{dir}/README.md"), b"etcd\n".to_vec())];
        all.extend(entries);
        tar_gz(&all)
    })
}

/// The real program `name` when `real`, else the stand-in made by `make`.
fn program(real: bool, name: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    if real {
        std::fs::read(built(name)).unwrap()
    } else {
        make()
    }
}

/// Every path of the upstream layouts for the tested versions, amd64. `real`: every program is
/// the one `hack/build-upstream.sh` built (the test fails when one is missing); otherwise only
/// etcd is real and the rest are STAND-INS.
pub fn layout(real: bool) -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    for name in KUBE_FILES {
        let data = if real {
            std::fs::read(built(name)).unwrap()
        } else if *name == "kubectl" {
            stand_in(name, &format!("Client Version: {KUBERNETES}"), false)
        } else {
            stand_in(name, &format!("Kubernetes {KUBERNETES}"), false)
        };
        let p = format!("/k8s/{KUBERNETES}/bin/linux/amd64/{name}");
        files.insert(format!("{p}.sha256"), sha256(&data).into_bytes());
        files.insert(p, data);
    }
    let etcd = etcd_tarball().to_vec();
    let asset = format!("etcd-{ETCD}-linux-amd64.tar.gz");
    files.insert(
        format!("/etcd/{ETCD}/SHA256SUMS"),
        format!(
            "{}  etcd-{ETCD}-linux-arm64.tar.gz\n{}  {asset}\n",
            "1".repeat(64),
            sha256(&etcd)
        )
        .into_bytes(),
    );
    files.insert(format!("/etcd/{ETCD}/{asset}"), etcd);

    let bare = CONTAINERD.trim_start_matches('v');
    let asset = format!("containerd-{bare}-linux-amd64.tar.gz");
    let c = tar_gz(&[
        (
            "bin/containerd".into(),
            program(real, "containerd", || {
                stand_in(
                    "containerd",
                    &format!(
                        "containerd github.com/containerd/containerd/v2 {CONTAINERD} 0123abcd"
                    ),
                    false,
                )
            }),
        ),
        (
            "bin/containerd-shim-runc-v2".into(),
            program(real, "containerd-shim-runc-v2", || {
                stand_in(
                    "containerd-shim-runc-v2",
                    &format!("containerd-shim-runc-v2:\n  Version:  {CONTAINERD}"),
                    false,
                )
            }),
        ),
        (
            "bin/ctr".into(),
            program(real, "ctr", || {
                stand_in(
                    "ctr",
                    &format!("ctr github.com/containerd/containerd/v2 {CONTAINERD}"),
                    false,
                )
            }),
        ),
    ]);
    files.insert(
        format!("/containerd/{CONTAINERD}/{asset}.sha256sum"),
        format!("{}  {asset}\n", sha256(&c)).into_bytes(),
    );
    files.insert(format!("/containerd/{CONTAINERD}/{asset}"), c);

    let runc = program(real, "runc", || {
        stand_in(
            "runc",
            &format!("runc version {}", RUNC.trim_start_matches('v')),
            false,
        )
    });
    files.insert(
        format!("/runc/{RUNC}/runc.sha256sum"),
        format!(
            "{}  runc.arm64\n{}  runc.amd64\n",
            "2".repeat(64),
            sha256(&runc)
        )
        .into_bytes(),
    );
    files.insert(format!("/runc/{RUNC}/runc.amd64"), runc);

    let asset = format!("cni-plugins-linux-amd64-{CNI}.tgz");
    let cni = tar_gz(
        &["bridge", "host-local", "loopback", "portmap"]
            .iter()
            .map(|p| {
                (
                    format!("./{p}"),
                    program(real, p, || {
                        stand_in(
                            &format!("the CNI {p} plugin"),
                            &format!("CNI {p} plugin {CNI}"),
                            true,
                        )
                    }),
                )
            })
            .chain([("./LICENSE".to_string(), b"Apache-2.0\n".to_vec())])
            .collect::<Vec<_>>(),
    );
    files.insert(
        format!("/cni/{CNI}/{asset}.sha256"),
        format!("{}  {asset}\n", sha256(&cni)).into_bytes(),
    );
    files.insert(format!("/cni/{CNI}/{asset}"), cni);

    let asset = format!("crictl-{CRICTL}-linux-amd64.tar.gz");
    let crictl = tar_gz(&[(
        "crictl".into(),
        program(real, "crictl", || {
            stand_in("crictl", &format!("crictl version {CRICTL}"), false)
        }),
    )]);
    files.insert(
        format!("/crictl/{CRICTL}/{asset}.sha256"),
        format!("{}\n", sha256(&crictl)).into_bytes(),
    );
    files.insert(format!("/crictl/{CRICTL}/{asset}"), crictl);

    let bare = COREDNS.trim_start_matches('v');
    let asset = format!("coredns_{bare}_linux_amd64.tgz");
    let coredns = tar_gz(&[(
        "coredns".into(),
        program(real, "coredns", || {
            stand_in("coredns", &format!("CoreDNS-{bare}"), false)
        }),
    )]);
    files.insert(
        format!("/coredns/{COREDNS}/{asset}.sha256"),
        format!("{}  {asset}\n", sha256(&coredns)).into_bytes(),
    );
    files.insert(format!("/coredns/{COREDNS}/{asset}"), coredns);
    files
}

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// One byte changed in the middle.
    Corrupt,
    /// The body stops (connection closed) at this byte of the file, on every request.
    CutAt(usize),
    NotFound,
}

/// A request as the mirror saw it: path and Range header.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

pub type Files = Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>;

pub struct Mirror {
    pub port: u16,
    pub files: Files,
    pub faults: Arc<Mutex<HashMap<String, Fault>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mirror {
    pub fn start(files: HashMap<String, Vec<u8>>) -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let m = Mirror {
            port,
            files: Arc::new(Mutex::new(
                files.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            )),
            faults: Arc::new(Mutex::new(HashMap::new())),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let (files, faults, seen) = (m.files.clone(), m.faults.clone(), m.seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (files, faults, seen) = (files.clone(), faults.clone(), seen.clone());
                std::thread::spawn(move || serve(conn, &files, &faults, &seen));
            }
        });
        m
    }

    pub fn fault(&self, path: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(path.into(), fault);
    }

    pub fn put(&self, path: &str, data: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), Arc::new(data));
    }

    pub fn heal(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}", self.port)
    }

    /// `--mirror` flags for every component.
    pub fn mirror_args(&self) -> Vec<String> {
        [
            ("kubernetes", "k8s"),
            ("etcd", "etcd"),
            ("containerd", "containerd"),
            ("runc", "runc"),
            ("cni", "cni"),
            ("crictl", "crictl"),
            ("coredns", "coredns"),
        ]
        .iter()
        .flat_map(|(c, p)| ["--mirror".to_string(), format!("{c}={}", self.url(p))])
        .collect()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut conn: TcpStream,
    files: &Mutex<HashMap<String, Arc<Vec<u8>>>>,
    faults: &Mutex<HashMap<String, Fault>>,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: range.clone(),
    });
    let fault = faults.lock().unwrap().get(&path).copied();
    let data = files.lock().unwrap().get(&path).cloned();
    let Some(data) = data.filter(|_| !matches!(fault, Some(Fault::NotFound))) else {
        let _ = conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        );
        return;
    };
    let data = if let Some(Fault::Corrupt) = fault {
        let mut bad = data.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        Arc::new(bad)
    } else {
        data
    };
    let len = data.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let head = match start {
        Some(s) if s >= len => {
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            return;
        }
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            len - 1,
            len - s
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"),
    };
    let from = start.unwrap_or(0);
    let to = match fault {
        Some(Fault::CutAt(at)) => at.clamp(from, len),
        _ => len,
    };
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let _ = conn.write_all(&data[from..to]);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}
