//! A read-only walk of a bbolt database (go.etcd.io/bbolt 1.3, as etcd 3.4 and 3.5 write it)
//! that checks what bbolt's `tx.Check()` checks: every page below the high-water mark is used
//! once or is free (when a freelist is stored), page types and element bounds hold. Pages are
//! read with positioned reads; the spans held at once (a leaf's, while a bucket nested in it is
//! walked) count against one budget, [`MAX_HELD`], so memory stays bounded however deep the
//! nesting.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::{Corruption, MetaFault};

const PAGE_HEADER: usize = 16;
/// Branch elements {pos, ksize, pgid} and leaf elements {flags, pos, ksize, vsize}: 16 bytes each.
const ELEMENT: usize = 16;
/// The meta struct up to and including its checksum.
const META_LEN: usize = 64;
/// Bytes of the meta struct covered by its checksum.
const META_SUMMED: usize = 56;
/// A bucket value starts with {root pgid, sequence}; an inline page follows when root is 0.
const BUCKET_HEADER: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// `meta.freelist` when the freelist is not stored (etcd sets bbolt's NoFreelistSync).
const NO_FREELIST: u64 = u64::MAX;
/// Page sizes to look for meta page 1 at when meta page 0 is unusable.
const PAGE_SIZES: [u64; 8] = [4096, 512, 1024, 2048, 8192, 16384, 32768, 65536];
/// Tree levels plus bucket nesting; real databases stay far below this.
pub const MAX_DEPTH: u32 = 64;
/// The largest page span (a page and its overflow) read into memory at once.
pub const MAX_SPAN: u64 = 256 << 20;
/// The most span bytes held at once, over every level of a nested walk.
pub const MAX_HELD: u64 = MAX_SPAN;
/// Per-page state bits.
const REACHABLE: u8 = 1;
const FREED: u8 = 2;

/// Why a walk stopped: the file could not be read, or it is not a sound database.
#[derive(Debug)]
pub enum Fault {
    Io(io::Error),
    Corrupt(Corruption),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Io(e)
    }
}

impl From<Corruption> for Fault {
    fn from(c: Corruption) -> Self {
        Fault::Corrupt(c)
    }
}

/// The page size and meta page bbolt would use, with the checks that need nothing else: a file
/// that is no bbolt database is refused after reading its first pages only.
pub fn header(file: &File, db_len: u64) -> Result<(u64, Meta), Fault> {
    let (page_size, meta) = pick_meta(file, db_len)?;
    // bbolt only ever writes whole pages; etcd's trailer was taken off by the caller.
    if !db_len.is_multiple_of(page_size) {
        return Err(Corruption::PartialPage {
            len: db_len,
            page_size,
        }
        .into());
    }
    let high_water = meta.high_water;
    let needed = high_water.saturating_mul(page_size);
    if needed > db_len {
        return Err(Corruption::Truncated {
            needed,
            len: db_len,
        }
        .into());
    }
    for page in [meta.root, meta.freelist] {
        if page != NO_FREELIST && !(2..high_water).contains(&page) {
            return Err(Corruption::PageOutOfRange { page, high_water }.into());
        }
    }
    Ok((page_size, meta))
}

/// Check the database in the first `db_len` bytes of `file`, giving `root` each entry of the
/// root bucket in key order; its size as bbolt's `tx.Size()` reports it.
pub fn walk(file: &File, db_len: u64, root: &mut dyn Visit) -> Result<u64, Fault> {
    walk_measured(file, db_len, root).map(|(size, _)| size)
}

/// [`walk`], and the most span bytes it held in memory at once.
pub fn walk_measured(file: &File, db_len: u64, root: &mut dyn Visit) -> Result<(u64, u64), Fault> {
    let (page_size, meta) = header(file, db_len)?;
    let high_water = meta.high_water;
    let needed = high_water * page_size;
    // At most one byte per page of the file: bounded by the file's size.
    let count = usize::try_from(high_water).map_err(|_| io::Error::other("database too large"))?;
    let mut pages = vec![0u8; count];
    pages[0] = REACHABLE;
    pages[1] = REACHABLE;
    let mut db = Db {
        file,
        page_size,
        high_water,
        pages,
        budget: db_len,
        held: Rc::new(Cell::new(0)),
        most_held: 0,
    };
    if meta.freelist != NO_FREELIST {
        db.read_freelist(meta.freelist)?;
    }
    db.walk_tree(meta.root, 0, root)?;
    if meta.freelist != NO_FREELIST
        && let Some(page) = db.pages.iter().position(|&s| s == 0)
    {
        return Err(Corruption::UnreachableUnfreed { page: page as u64 }.into());
    }
    Ok((needed, db.most_held))
}

#[derive(Debug, Clone, Copy)]
pub struct Meta {
    page_size: u64,
    root: u64,
    freelist: u64,
    high_water: u64,
    txid: u64,
}

/// The page size and the meta bbolt would use: the valid one of pages 0 and 1 with the higher
/// transaction id. The page size comes from meta 0; when that is unusable, meta 1 is looked for
/// at the usual page sizes, as newer bbolt does.
fn pick_meta(file: &File, db_len: u64) -> Result<(u64, Meta), Fault> {
    if db_len < (PAGE_HEADER + META_LEN) as u64 {
        return Err(Corruption::TooShort { len: db_len }.into());
    }
    let meta_at = |offset: u64, id: u64| -> io::Result<Option<Result<Meta, MetaFault>>> {
        if offset + ((PAGE_HEADER + META_LEN) as u64) > db_len {
            return Ok(None);
        }
        let mut buf = [0u8; PAGE_HEADER + META_LEN];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Some(parse_meta(&buf, id)))
    };
    let Some(meta0) = meta_at(0, 0)? else {
        return Err(Corruption::TooShort { len: db_len }.into());
    };
    let (page_size, first) = match meta0 {
        Ok(m) => (m.page_size, m),
        Err(fault) => {
            for size in PAGE_SIZES {
                if let Some(Ok(m)) = meta_at(size, 1)?
                    && m.page_size == size
                {
                    return Ok((size, m));
                }
            }
            return Err(Corruption::InvalidMeta { page: 0, fault }.into());
        }
    };
    match meta_at(page_size, 1)? {
        Some(Ok(second)) if second.page_size == page_size && second.txid > first.txid => {
            Ok((page_size, second))
        }
        _ => Ok((page_size, first)),
    }
}

fn parse_meta(buf: &[u8], id: u64) -> Result<Meta, MetaFault> {
    let (found, flags) = (u64_at(buf, 0), u16_at(buf, 8));
    if found != id || flags != META {
        return Err(MetaFault::NotMeta { id: found, flags });
    }
    let m = &buf[PAGE_HEADER..PAGE_HEADER + META_LEN];
    if u32_at(m, 0) != MAGIC {
        return Err(MetaFault::BadMagic(u32_at(m, 0)));
    }
    if u32_at(m, 4) != VERSION {
        return Err(MetaFault::BadVersion(u32_at(m, 4)));
    }
    // bbolt accepts a zero checksum; it never writes one, so kinit does not.
    if u64_at(m, META_SUMMED) != fnv1a(&m[..META_SUMMED]) {
        return Err(MetaFault::BadChecksum);
    }
    let page_size = u32_at(m, 8);
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Err(MetaFault::BadPageSize(page_size));
    }
    Ok(Meta {
        page_size: u64::from(page_size),
        root: u64_at(m, 16),
        freelist: u64_at(m, 32),
        high_water: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub struct Db<'f> {
    file: &'f File,
    page_size: u64,
    high_water: u64,
    /// REACHABLE / FREED bits per page below the high-water mark.
    pages: Vec<u8>,
    /// Bytes that leaf entries may still claim: element headers, keys and plain values each
    /// occupy their own bytes of a sound database, so together they fit in the file. Entries
    /// that overlap (a hostile inline bucket listing itself many times over) run out instead of
    /// multiplying the work.
    budget: u64,
    /// Span bytes in memory right now (every level of the walk).
    held: Rc<Cell<u64>>,
    /// The most ever held at once.
    pub most_held: u64,
}

/// A page span in memory, counted in [`Db::held`] until it is dropped.
struct Span {
    bytes: Vec<u8>,
    held: Rc<Cell<u64>>,
}

impl std::ops::Deref for Span {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.held.set(self.held.get() - self.bytes.len() as u64);
    }
}

/// A bucket's entry as bbolt's `ForEach` sees it.
pub enum Value<'a> {
    Plain(&'a [u8]),
    /// A nested bucket: `ForEach` gives it a nil value; these are the bucket's own bytes.
    Bucket(&'a [u8]),
}

pub trait Visit {
    fn entry(
        &mut self,
        db: &mut Db,
        page: u64,
        depth: u32,
        key: &[u8],
        value: Value,
    ) -> Result<(), Fault>;
}

impl Db<'_> {
    /// The span of page `id` (the page and its overflow), checked to lie below the high-water
    /// mark, to carry its own id and not to be too large.
    fn read_span(&mut self, id: u64) -> Result<Span, Fault> {
        let out_of_range = Corruption::PageOutOfRange {
            page: id,
            high_water: self.high_water,
        };
        if id >= self.high_water {
            return Err(out_of_range.into());
        }
        let mut header = [0u8; PAGE_HEADER];
        self.file.read_exact_at(&mut header, id * self.page_size)?;
        let found = u64_at(&header, 0);
        if found != id {
            return Err(Corruption::PageIdMismatch { page: id, found }.into());
        }
        let span = u64::from(u32_at(&header, 12)) + 1;
        if id + span > self.high_water {
            return Err(out_of_range.into());
        }
        let bytes = span * self.page_size;
        if bytes > MAX_SPAN {
            return Err(Corruption::PageTooLarge { page: id, bytes }.into());
        }
        let held = self.held.get();
        if held + bytes > MAX_HELD {
            return Err(Corruption::TooMuchHeld {
                page: id,
                bytes,
                held,
            }
            .into());
        }
        let mut buf = vec![0u8; bytes as usize];
        self.file.read_exact_at(&mut buf, id * self.page_size)?;
        self.held.set(held + bytes);
        self.most_held = self.most_held.max(held + bytes);
        Ok(Span {
            bytes: buf,
            held: self.held.clone(),
        })
    }

    /// Claim a tree page's span: bbolt's "multiple references" and "reachable freed".
    fn claim(&mut self, id: u64, span: &[u8]) -> Result<(), Corruption> {
        let count = span.len() as u64 / self.page_size;
        for page in id..id + count {
            let state = &mut self.pages[page as usize];
            if *state & REACHABLE != 0 {
                return Err(Corruption::MultipleReferences { page });
            }
            if *state & FREED != 0 {
                return Err(Corruption::ReachableFreed { page });
            }
            *state |= REACHABLE;
        }
        Ok(())
    }

    fn read_freelist(&mut self, id: u64) -> Result<(), Fault> {
        let buf = self.read_span(id)?;
        let flags = u16_at(&buf, 8);
        if flags != FREELIST {
            let expected = "a freelist page";
            return Err(Corruption::WrongPageType {
                page: id,
                flags,
                expected,
            }
            .into());
        }
        for page in id..id + buf.len() as u64 / self.page_size {
            self.pages[page as usize] |= REACHABLE;
        }
        // A count of 0xFFFF means the real count is the first id slot.
        let (mut start, mut count) = (PAGE_HEADER, u64::from(u16_at(&buf, 10)));
        if count == 0xFFFF {
            start += 8;
            count = u64_from(&buf, PAGE_HEADER)
                .ok_or(Corruption::ElementOutOfPage { page: id, index: 0 })?;
        }
        let fits = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(start as u64));
        if fits.is_none_or(|end| end > buf.len() as u64) {
            return Err(Corruption::ElementOutOfPage { page: id, index: 0 }.into());
        }
        for chunk in buf[start..start + count as usize * 8].chunks_exact(8) {
            let freed = u64_at(chunk, 0);
            // bbolt ignores ids beyond the high-water mark here; so does kinit.
            if let Some(state) = self.pages.get_mut(freed as usize) {
                if *state & FREED != 0 {
                    return Err(Corruption::AlreadyFreed { page: freed }.into());
                }
                *state |= FREED;
            }
        }
        Ok(())
    }

    /// Visit the entries of the page-based tree rooted at `id`, in key order.
    fn walk_tree(&mut self, id: u64, depth: u32, v: &mut dyn Visit) -> Result<(), Fault> {
        if depth > MAX_DEPTH {
            return Err(Corruption::TooDeep { page: id }.into());
        }
        let buf = self.read_span(id)?;
        self.claim(id, &buf)?;
        match u16_at(&buf, 8) {
            BRANCH => {
                let mut children = Vec::with_capacity(usize::from(u16_at(&buf, 10)));
                for (index, elem) in elements(&buf, id)? {
                    let sizes = (u32_at(&buf, elem), u32_at(&buf, elem + 4), 0);
                    entry_range(&buf, elem, sizes, id, index)?;
                    children.push(u64_at(&buf, elem + 8));
                }
                drop(buf);
                for child in children {
                    self.walk_tree(child, depth + 1, v)?;
                }
                Ok(())
            }
            LEAF => self.visit_leaf(&buf, id, depth, v),
            flags => {
                let expected = "a branch or leaf page";
                Err(Corruption::WrongPageType {
                    page: id,
                    flags,
                    expected,
                }
                .into())
            }
        }
    }

    /// Visit the entries of the bucket whose value (found in page `page`) is `value`.
    pub fn walk_bucket(
        &mut self,
        value: &[u8],
        page: u64,
        depth: u32,
        v: &mut dyn Visit,
    ) -> Result<(), Fault> {
        if depth > MAX_DEPTH {
            return Err(Corruption::TooDeep { page }.into());
        }
        if value.len() < BUCKET_HEADER {
            return Err(Corruption::BadBucketValue { page }.into());
        }
        match u64_at(value, 0) {
            0 => {
                let inline = &value[BUCKET_HEADER..];
                if inline.len() < PAGE_HEADER {
                    return Err(Corruption::BadBucketValue { page }.into());
                }
                let flags = u16_at(inline, 8);
                if flags != LEAF {
                    let expected = "an inline leaf page";
                    return Err(Corruption::WrongPageType {
                        page,
                        flags,
                        expected,
                    }
                    .into());
                }
                self.visit_leaf(inline, page, depth, v)
            }
            root => self.walk_tree(root, depth + 1, v),
        }
    }

    fn visit_leaf(
        &mut self,
        buf: &[u8],
        page: u64,
        depth: u32,
        v: &mut dyn Visit,
    ) -> Result<(), Fault> {
        for (index, elem) in elements(buf, page)? {
            let flags = u32_at(buf, elem);
            let sizes = (
                u32_at(buf, elem + 4),
                u32_at(buf, elem + 8),
                u32_at(buf, elem + 12),
            );
            let (key, value_end) = entry_range(buf, elem, sizes, page, index)?;
            let value = &buf[key.end..value_end];
            let (value, plain) = if flags & BUCKET_LEAF != 0 {
                (Value::Bucket(value), 0)
            } else {
                (Value::Plain(value), value.len())
            };
            let cost = (ELEMENT + key.len() + plain) as u64;
            self.budget = self
                .budget
                .checked_sub(cost)
                .ok_or(Corruption::Overlapping { page })?;
            v.entry(self, page, depth, &buf[key], value)?;
        }
        Ok(())
    }
}

/// (index, offset) of each element of the page in `buf`, once the element array is known to fit.
fn elements(
    buf: &[u8],
    page: u64,
) -> Result<impl Iterator<Item = (u64, usize)> + use<>, Corruption> {
    let count = usize::from(u16_at(buf, 10));
    if PAGE_HEADER + count * ELEMENT > buf.len() {
        let index = ((buf.len() - PAGE_HEADER) / ELEMENT) as u64;
        return Err(Corruption::ElementOutOfPage { page, index });
    }
    Ok((0..count).map(|i| (i as u64, PAGE_HEADER + i * ELEMENT)))
}

/// The key's byte range and the end of the value after it, for the element at `elem` (positions
/// count from the element's own start).
fn entry_range(
    buf: &[u8],
    elem: usize,
    (pos, ksize, vsize): (u32, u32, u32),
    page: u64,
    index: u64,
) -> Result<(std::ops::Range<usize>, usize), Corruption> {
    let start = elem as u64 + u64::from(pos);
    let key_end = start + u64::from(ksize);
    let value_end = key_end + u64::from(vsize);
    if value_end > buf.len() as u64 {
        return Err(Corruption::ElementOutOfPage { page, index });
    }
    Ok((start as usize..key_end as usize, value_end as usize))
}

/// Deeper buckets: not hashed or counted by etcd, but checked like bbolt's `tx.Check()` does.
pub struct Nested;

impl Visit for Nested {
    fn entry(
        &mut self,
        db: &mut Db,
        page: u64,
        depth: u32,
        _key: &[u8],
        value: Value,
    ) -> Result<(), Fault> {
        match value {
            Value::Plain(_) => Ok(()),
            Value::Bucket(nested) => db.walk_bucket(nested, page, depth + 1, self),
        }
    }
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64_from(buf, at).expect("caller checked the length")
}

fn u64_from(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}
