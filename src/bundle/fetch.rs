//! `kinit bundle fetch`: each release's assets from upstream's layout (or a mirror with the same
//! layout), each checked against its published checksum before anything of it lands. Downloads
//! go to `DIR/.partial/<asset>.part`; an interrupted one is retried and resumed with an HTTP
//! Range request, in this run or the next. Progress goes to the caller's [`Reporter`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::archive::{self, Staged};
use super::error::OpError;
use super::manifest::{FileEntry, VersionFrom};
use super::sources::{self, Arch, Component, Download, Unpack};
use super::store::Store;
use super::version::{self, Version};

/// What the command asked for.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub dir: std::path::PathBuf,
    pub arch: Arch,
    /// The releases to fetch, by component (`v1.37.2`).
    pub releases: BTreeMap<Component, String>,
    /// A base URL per component that replaces upstream's.
    pub mirrors: BTreeMap<Component, String>,
    /// Tries per request after the first.
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one.
    pub retry_wait: Duration,
    /// No byte for this long ends an attempt.
    pub read_timeout: Duration,
}

impl FetchOptions {
    pub fn new(dir: std::path::PathBuf, arch: Arch) -> FetchOptions {
        FetchOptions {
            dir,
            arch,
            releases: Component::ALL
                .iter()
                .map(|c| (*c, c.default_version().to_string()))
                .collect(),
            mirrors: BTreeMap::new(),
            retries: 4,
            retry_wait: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
        }
    }

    /// Every download, in component order.
    pub fn downloads(&self) -> Vec<Download> {
        self.releases
            .iter()
            .flat_map(|(c, v)| {
                let base = self
                    .mirrors
                    .get(c)
                    .map(String::as_str)
                    .unwrap_or(c.upstream_base());
                sources::downloads(*c, v, self.arch, base)
            })
            .collect()
    }
}

/// What a fetch tells as it goes. The command shows it (bars on a terminal, lines otherwise).
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A download starts (again, from `from` bytes, on a resume).
    Started {
        url: &'a str,
        from: u64,
        total: Option<u64>,
    },
    Progress {
        url: &'a str,
        done: u64,
    },
    Retrying {
        url: &'a str,
        attempt: u32,
        of: u32,
        reason: &'a str,
    },
    Downloaded {
        url: &'a str,
        bytes: u64,
        elapsed: Duration,
    },
    /// Already in the bundle, checked.
    Present {
        component: Component,
        version: &'a str,
        asset: &'a str,
    },
    Landed {
        name: &'a str,
        version: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn on(&self, event: Event<'_>);
}

/// A reporter that shows nothing.
pub struct Silent;
impl Reporter for Silent {
    fn on(&self, _: Event<'_>) {}
}

#[derive(Debug, Default, Clone)]
pub struct FetchSummary {
    pub downloaded_bytes: u64,
    pub landed: Vec<String>,
    pub present: Vec<String>,
}

pub fn client(read_timeout: Duration) -> Result<reqwest::Client, OpError> {
    reqwest::Client::builder()
        .user_agent(concat!("kinit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(read_timeout)
        .build()
        .map_err(|e| OpError::Client(chain(&e)))
}

/// An error with its causes, which say what actually happened ("connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Fetch every release of `opts` into `opts.dir`.
pub async fn fetch(opts: &FetchOptions, reporter: &dyn Reporter) -> Result<FetchSummary, OpError> {
    let client = client(opts.read_timeout)?;
    let mut store = Store::open(&opts.dir, true)?;
    let mut summary = FetchSummary::default();
    for d in opts.downloads() {
        if store.has_download(&d, opts.arch)? {
            reporter.on(Event::Present {
                component: d.component,
                version: &d.version,
                asset: d.asset(),
            });
            summary.present.push(d.asset().to_string());
            continue;
        }
        let expected = checksum(&client, opts, &d, reporter).await?;
        let part = store.staging().join(format!("{}.part", d.asset()));
        summary.downloaded_bytes += download(&client, opts, &d.url, &part, reporter).await?;
        let actual = super::sha256_file(&part)?;
        if actual != expected {
            // A damaged file is not resumed from: the next run starts it anew.
            let _ = std::fs::remove_file(&part);
            return Err(OpError::Mismatch {
                file: d.asset().to_string(),
                expected,
                actual,
                checksum_url: d.checksum.url.clone(),
            });
        }
        let staged = match &d.unpack {
            Unpack::Plain { file } => {
                let dest = store.staging().join(format!("{file}.staged"));
                std::fs::rename(&part, &dest).map_err(OpError::io("renaming", &part))?;
                set_executable(&dest)?;
                vec![Staged {
                    name: file.clone(),
                    path: dest,
                    sha256: actual,
                }]
            }
            unpack => {
                let out = archive::extract(&part, unpack, store.staging());
                let _ = std::fs::remove_file(&part);
                out?
            }
        };
        let entries: Result<Vec<_>, _> =
            staged.iter().map(|s| describe(s, &d, opts.arch)).collect();
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                // Refused binaries do not wait in .partial: the next run fetches them anew.
                for s in &staged {
                    let _ = std::fs::remove_file(&s.path);
                }
                return Err(e);
            }
        };
        for (s, e) in staged.iter().zip(entries) {
            store.land(&s.path, e.clone())?;
            reporter.on(Event::Landed {
                name: &s.name,
                version: &d.version,
            });
            summary.landed.push(s.name.clone());
            if let Some(image) = super::store::image_of(&mut store, &e)? {
                summary.landed.push(image.name);
            }
        }
        store.save()?;
    }
    store.finish()?;
    Ok(summary)
}

/// A fetched binary's manifest entry: its CPU from its ELF header, its version from running it
/// (when it runs here), both checked against what was asked for.
fn describe(s: &Staged, d: &Download, arch: Arch) -> Result<FileEntry, OpError> {
    let found = super::elf_arch(&s.path)?;
    if let Some(found) = found
        && found != arch
    {
        return Err(OpError::WrongArch {
            file: s.name.clone(),
            expected: arch.to_string(),
            found: found.to_string(),
        });
    }
    let want = Version::parse(&d.version).ok_or_else(|| OpError::Version {
        file: s.name.clone(),
        reason: format!("the release `{}` is not vX.Y.Z", d.version),
    })?;
    let (version, version_from) = if Arch::host() == Some(arch) {
        let v = version::read(&s.path, &s.name).map_err(|reason| OpError::Version {
            file: s.name.clone(),
            reason,
        })?;
        if v != want {
            return Err(OpError::NotTheRelease {
                file: s.name.clone(),
                component: d.component.to_string(),
                expected: want.to_string(),
                found: v.to_string(),
            });
        }
        (v, VersionFrom::Binary)
    } else {
        (want, VersionFrom::Release)
    };
    Ok(FileEntry {
        name: s.name.clone(),
        component: d.component,
        version: version.to_string(),
        arch,
        sha256: s.sha256.clone(),
        version_from,
        source: Some(d.url.clone()),
    })
}

fn set_executable(path: &Path) -> Result<(), OpError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(OpError::io("setting the mode of", path))
}

/// The published digest of `d`'s asset.
async fn checksum(
    client: &reqwest::Client,
    opts: &FetchOptions,
    d: &Download,
    reporter: &dyn Reporter,
) -> Result<String, OpError> {
    let url = &d.checksum.url;
    let mut attempt = 0;
    let text = loop {
        attempt += 1;
        let failed = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(t) => break t,
                Err(e) => chain(&e),
            },
            Ok(r) if !retryable(r.status().as_u16()) => {
                return Err(OpError::Status {
                    url: url.clone(),
                    status: r.status().as_u16(),
                });
            }
            Ok(r) => format!("the server answered {}", r.status()),
            Err(e) => chain(&e),
        };
        if attempt > opts.retries {
            return Err(OpError::Http {
                url: url.clone(),
                reason: failed,
                attempts: attempt,
            });
        }
        reporter.on(Event::Retrying {
            url,
            attempt,
            of: opts.retries + 1,
            reason: &failed,
        });
        tokio::time::sleep(backoff(opts, attempt)).await;
    };
    sources::find_checksum(&text, &d.checksum.asset).map_err(|reason| OpError::BadChecksumFile {
        url: url.clone(),
        asset: d.checksum.asset.clone(),
        reason,
    })
}

fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

fn backoff(opts: &FetchOptions, attempt: u32) -> Duration {
    opts.retry_wait * 2u32.saturating_pow(attempt.saturating_sub(1).min(6))
}

enum Attempt {
    Done(u64),
    /// Worth another try; `got` bytes of `total` are in the part file.
    Retry {
        reason: String,
        got: u64,
        total: Option<u64>,
    },
}

/// `url` into `part`, resumed from what `part` already holds; the bytes transferred.
async fn download(
    client: &reqwest::Client,
    opts: &FetchOptions,
    url: &str,
    part: &Path,
    reporter: &dyn Reporter,
) -> Result<u64, OpError> {
    let mut attempt = 0;
    let mut transferred = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        match download_once(client, url, part, reporter, &mut transferred).await? {
            Attempt::Done(bytes) => {
                reporter.on(Event::Downloaded {
                    url,
                    bytes,
                    elapsed: started.elapsed(),
                });
                return Ok(transferred);
            }
            Attempt::Retry { reason, got, total } => {
                if attempt > opts.retries {
                    return Err(if got > 0 {
                        OpError::Cut {
                            url: url.to_string(),
                            got,
                            total,
                            attempts: attempt,
                            part: part.to_path_buf(),
                        }
                    } else {
                        OpError::Http {
                            url: url.to_string(),
                            reason,
                            attempts: attempt,
                        }
                    });
                }
                reporter.on(Event::Retrying {
                    url,
                    attempt,
                    of: opts.retries + 1,
                    reason: &reason,
                });
                tokio::time::sleep(backoff(opts, attempt)).await;
            }
        }
    }
}

/// `bytes a-b/total` -> total
fn content_range_total(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?
        .rsplit('/')
        .next()?
        .parse()
        .ok()
}

async fn download_once(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    reporter: &dyn Reporter,
    transferred: &mut u64,
) -> Result<Attempt, OpError> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let retry =
        |reason: String, got: u64, total: Option<u64>| Ok(Attempt::Retry { reason, got, total });
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return retry(chain(&e), have, None),
    };
    let status = response.status().as_u16();
    let (append, total) = match status {
        206 if have > 0 => (
            true,
            content_range_total(&response).or_else(|| response.content_length().map(|l| l + have)),
        ),
        200 => (false, response.content_length()),
        // The part file already holds the whole file (or more than the file: start anew).
        416 if have > 0 => {
            if content_range_total(&response) == Some(have) {
                return Ok(Attempt::Done(have));
            }
            let _ = std::fs::remove_file(part);
            return retry("the partial file was longer than the file".into(), 0, None);
        }
        s if retryable(s) => return retry(format!("the server answered {status}"), have, None),
        _ => {
            return Err(OpError::Status {
                url: url.to_string(),
                status,
            });
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(OpError::io("writing", part))?;
    let mut done = if append { have } else { 0 };
    reporter.on(Event::Started {
        url,
        from: done,
        total,
    });
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                file.write_all(&bytes)
                    .map_err(OpError::io("writing", part))?;
                done += bytes.len() as u64;
                *transferred += bytes.len() as u64;
                reporter.on(Event::Progress { url, done });
            }
            Ok(None) => break,
            Err(e) => {
                file.sync_all().map_err(OpError::io("syncing", part))?;
                return retry(chain(&e), done, total);
            }
        }
    }
    file.sync_all().map_err(OpError::io("syncing", part))?;
    if let Some(t) = total
        && done != t
    {
        return retry(format!("the server sent {done} of {t} bytes"), done, total);
    }
    Ok(Attempt::Done(done))
}
