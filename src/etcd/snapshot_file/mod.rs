//! Verify an etcd snapshot file on the operator's machine, without etcd's tools, and report what
//! `etcdctl snapshot status` (`etcdutl` since 3.5) reports about it.
//!
//! A snapshot written by `etcdctl snapshot save` is a bbolt database followed by a 32-byte
//! sha256 of everything before it; etcd tells the two apart by `length % 512 == 32`, as
//! `etcdctl snapshot restore` does. A plain database file (`member/snap/db`) has no trailer.
//!
//! Memory stays bounded whatever the file: the meta pages are checked first (a file that is no
//! database is refused without reading the rest), the sha256 is streamed in chunks and the
//! B+tree is walked with positioned reads, the page spans in memory at once (nested buckets
//! included) held to [`bbolt::MAX_HELD`] bytes. Damaged or hostile files
//! give a typed error naming the file, never a panic or an endless walk.

mod bbolt;
mod status;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use bbolt::MAX_DEPTH;

/// Length of etcd's integrity trailer (a sha256).
const TRAILER: u64 = 32;
/// How much of the file one streaming read takes.
const CHUNK: usize = 1 << 20;

/// What `etcdctl snapshot status` reports, plus what kinit checks on top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// etcd's hash: crc32 (Castagnoli) over every top-level bucket's name and then each of its
    /// keys and values, in key order.
    pub hash: u32,
    /// The main revision of the last key in bucket `key`.
    pub revision: i64,
    /// Entries over all top-level buckets (a nested bucket counts as one entry).
    pub total_keys: u64,
    /// bbolt's `tx.Size()`: high-water page id times the page size.
    pub total_size: u64,
    pub file_size: u64,
    /// Hex sha256 of the whole file, trailer included, to compare copies.
    pub sha256: String,
    pub integrity: Integrity,
}

/// The state of etcd's sha256 trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Integrity {
    /// The trailer is there and matches the database before it.
    Verified,
    /// No trailer: a plain database file, e.g. copied from a data directory.
    Absent,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("{} changed while it was read ({expected} bytes, then {actual})", path.display())]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{}: the snapshot's integrity hash is sha256 {expected} but its content hashes to {actual}; the file is damaged",
        path.display()
    )]
    IntegrityMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{} is not a usable etcd snapshot: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: Corruption,
    },
}

/// Verify the snapshot at `path` (integrity trailer, bbolt structure) and compute its status.
pub fn inspect(path: &Path) -> Result<SnapshotStatus, SnapshotFileError> {
    let read = |source| SnapshotFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Look before opening: opening a FIFO for reading would block.
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(SnapshotFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut file = File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(SnapshotFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let file_size = meta.len();
    if file_size == 0 {
        return Err(SnapshotFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let db_len = if file_size % 512 == TRAILER {
        file_size - TRAILER
    } else {
        file_size
    };
    let corrupt = |fault| match fault {
        bbolt::Fault::Io(source) => read(source),
        bbolt::Fault::Corrupt(source) => SnapshotFileError::Corrupt {
            path: path.to_path_buf(),
            source,
        },
    };
    // The header first: a file that is no bbolt database (a file of zeros, say) is refused
    // after its first pages, before the whole of it is hashed.
    bbolt::header(&file, db_len).map_err(corrupt)?;
    let digests = stream(&mut file, db_len).map_err(read)?;
    if digests.total != file_size {
        return Err(SnapshotFileError::Changed {
            path: path.to_path_buf(),
            expected: file_size,
            actual: digests.total,
        });
    }
    let integrity = match digests.trailer {
        None => Integrity::Absent,
        Some((actual, expected)) if actual == expected => Integrity::Verified,
        Some((actual, expected)) => {
            return Err(SnapshotFileError::IntegrityMismatch {
                path: path.to_path_buf(),
                expected: hex(&expected),
                actual: hex(&actual),
            });
        }
    };
    let db = status::read(&file, db_len).map_err(corrupt)?;
    Ok(SnapshotStatus {
        hash: db.hash,
        revision: db.revision,
        total_keys: db.total_keys,
        total_size: db.total_size,
        file_size,
        sha256: hex(&digests.whole),
        integrity,
    })
}

struct Digests {
    /// Bytes read.
    total: u64,
    whole: [u8; 32],
    /// (sha256 of the first `db_len` bytes, the trailer), when the file has one.
    trailer: Option<([u8; 32], [u8; 32])>,
}

/// One pass over the file: the sha256 of all of it and, when `db_len` leaves room for a trailer,
/// the sha256 of the database part and the trailer's bytes.
fn stream(file: &mut File, db_len: u64) -> io::Result<Digests> {
    let mut whole = Sha256::new();
    let mut body = Sha256::new();
    let mut trailer = Vec::with_capacity(TRAILER as usize);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        whole.update(chunk);
        let in_body = usize::try_from(db_len.saturating_sub(total)).map_or(n, |left| left.min(n));
        body.update(&chunk[..in_body]);
        let rest = &chunk[in_body..];
        let room = TRAILER as usize - trailer.len().min(TRAILER as usize);
        trailer.extend_from_slice(&rest[..rest.len().min(room)]);
        total += n as u64;
    }
    let trailer = match <[u8; 32]>::try_from(trailer.as_slice()) {
        Ok(stored) if total == db_len + TRAILER => Some((body.finalize().into(), stored)),
        _ => None,
    };
    Ok(Digests {
        total,
        whole: whole.finalize().into(),
        trailer,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// What is wrong with a database file, in bbolt's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("{len} bytes is too short for a bbolt database")]
    TooShort { len: u64 },
    #[error("meta page {page} is invalid: {fault}")]
    InvalidMeta { page: u64, fault: MetaFault },
    #[error("the database needs {needed} bytes but the file holds {len}; it is truncated")]
    Truncated { needed: u64, len: u64 },
    #[error(
        "{len} bytes is not a whole number of {page_size}-byte pages (nor that plus etcd's 32-byte trailer): bytes are missing or were appended"
    )]
    PartialPage { len: u64, page_size: u64 },
    #[error("page {page} is outside the database ({high_water} pages)")]
    PageOutOfRange { page: u64, high_water: u64 },
    #[error("page {page} carries the header of page {found}")]
    PageIdMismatch { page: u64, found: u64 },
    #[error("page {page} has type flags {flags:#06x}, expected {expected}")]
    WrongPageType {
        page: u64,
        flags: u16,
        expected: &'static str,
    },
    #[error("page {page} spans {bytes} bytes with its overflow, more than kinit reads at once")]
    PageTooLarge { page: u64, bytes: u64 },
    #[error(
        "page {page} spans {bytes} bytes while the buckets it is nested in hold {held}: more \
         than kinit reads at once ({} MiB)",
        bbolt::MAX_HELD >> 20
    )]
    TooMuchHeld { page: u64, bytes: u64, held: u64 },
    #[error("page {page}: element {index} lies outside the page")]
    ElementOutOfPage { page: u64, index: u64 },
    #[error("page {page}: entries overlap (together they are larger than the file)")]
    Overlapping { page: u64 },
    #[error("page {page} is referenced more than once (a cycle or a shared page)")]
    MultipleReferences { page: u64 },
    #[error("page {page} is in use and on the freelist")]
    ReachableFreed { page: u64 },
    #[error("page {page} is on the freelist twice")]
    AlreadyFreed { page: u64 },
    #[error("page {page} is neither in use nor on the freelist")]
    UnreachableUnfreed { page: u64 },
    #[error("the tree at page {page} is nested deeper than {MAX_DEPTH} levels")]
    TooDeep { page: u64 },
    #[error("page {page} holds a malformed bucket value")]
    BadBucketValue { page: u64 },
    #[error("top-level key {name:?} is not a bucket")]
    NotABucket { name: String },
    #[error("bucket \"key\" holds a {len}-byte key, too short for an etcd revision")]
    BadRevisionKey { len: usize },
}

/// Why a meta page is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetaFault {
    #[error("its header (page {id}, flags {flags:#06x}) is not a meta page's")]
    NotMeta { id: u64, flags: u16 },
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    #[error("unsupported version {0}")]
    BadVersion(u32),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("unusable page size {0}")]
    BadPageSize(u32),
}
