//! What `etcdctl snapshot status` computes over the walk (etcd 3.4's `clientv3/snapshot`,
//! `etcdutl` since 3.5): a crc32c over each top-level bucket's name and then its keys and values,
//! the entry count, and the main revision of the last key in bucket `key`.

use std::fs::File;

use super::Corruption;
use super::bbolt::{self, Db, Fault, Value, Visit};

/// What `etcdctl snapshot status` computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub hash: u32,
    pub revision: i64,
    pub total_keys: u64,
    pub total_size: u64,
}

/// Check the database in the first `db_len` bytes of `file` and compute its status.
pub fn read(file: &File, db_len: u64) -> Result<Contents, Fault> {
    let mut status = Status {
        crc: Crc32c::default(),
        revision: 0,
        total_keys: 0,
    };
    let total_size = bbolt::walk(file, db_len, &mut TopLevel(&mut status))?;
    Ok(Contents {
        hash: status.crc.0,
        revision: status.revision,
        total_keys: status.total_keys,
        total_size,
    })
}

struct Status {
    crc: Crc32c,
    revision: i64,
    total_keys: u64,
}

/// The root bucket: every entry must be a bucket; hash its name, then its contents.
struct TopLevel<'a>(&'a mut Status);

impl Visit for TopLevel<'_> {
    fn entry(
        &mut self,
        db: &mut Db,
        page: u64,
        depth: u32,
        key: &[u8],
        value: Value,
    ) -> Result<(), Fault> {
        let Value::Bucket(bucket) = value else {
            let name = String::from_utf8_lossy(key).into_owned();
            return Err(Corruption::NotABucket { name }.into());
        };
        self.0.crc.update(key);
        let mut contents = Entries {
            status: &mut *self.0,
            revisions: key == b"key",
        };
        db.walk_bucket(bucket, page, depth + 1, &mut contents)
    }
}

/// A top-level bucket's entries, as `etcdctl snapshot status` hashes and counts them.
struct Entries<'a> {
    status: &'a mut Status,
    /// Bucket `key`: keys are revisions {main u64 BE, '_', sub u64 BE}, maybe a tombstone mark.
    revisions: bool,
}

impl Visit for Entries<'_> {
    fn entry(
        &mut self,
        db: &mut Db,
        page: u64,
        depth: u32,
        key: &[u8],
        value: Value,
    ) -> Result<(), Fault> {
        if self.revisions {
            if key.len() < 17 {
                return Err(Corruption::BadRevisionKey { len: key.len() }.into());
            }
            let main: [u8; 8] = key[..8].try_into().expect("8 bytes");
            self.status.revision = i64::from_be_bytes(main);
        }
        self.status.total_keys += 1;
        self.status.crc.update(key);
        match value {
            Value::Plain(v) => {
                self.status.crc.update(v);
                Ok(())
            }
            Value::Bucket(nested) => db.walk_bucket(nested, page, depth + 1, &mut bbolt::Nested),
        }
    }
}

/// crc32 with the Castagnoli polynomial (Go's `crc32.MakeTable(crc32.Castagnoli)`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Crc32c(pub u32);

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32c {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = !self.0;
        for &b in bytes {
            c = CRC32C_TABLE[usize::from(c as u8 ^ b)] ^ (c >> 8);
        }
        self.0 = !c;
    }
}
