//! The hand-built database the tests damage: bbolt's page layout written byte by byte (meta,
//! branch, leaf and freelist pages), and the helpers that read it back or point into it.

use std::io::Write;

use super::super::Corruption;
use super::super::bbolt::{self, Fault};
use super::super::status::{self, Crc32c};

pub(super) const PS: usize = 4096;
pub(super) const BUCKET: u32 = 0x01;

pub(super) fn header(buf: &mut [u8], id: u64, flags: u16, count: usize, overflow: usize) {
    buf[..8].copy_from_slice(&id.to_le_bytes());
    buf[8..10].copy_from_slice(&flags.to_le_bytes());
    buf[10..12].copy_from_slice(&(count as u16).to_le_bytes());
    buf[12..16].copy_from_slice(&(overflow as u32).to_le_bytes());
}

/// A leaf page as bbolt lays it out: header, elements, then each key followed by its value.
pub(super) fn inline_leaf(entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let data_start = 16 + entries.len() * 16;
    let mut buf = vec![0u8; data_start];
    header(&mut buf, 0, 0x02, entries.len(), 0);
    for (i, (flags, k, v)) in entries.iter().enumerate() {
        let elem = 16 + i * 16;
        let pos = (buf.len() - elem) as u32;
        for (at, field) in [*flags, pos, k.len() as u32, v.len() as u32]
            .iter()
            .enumerate()
        {
            buf[elem + at * 4..elem + at * 4 + 4].copy_from_slice(&field.to_le_bytes());
        }
        buf.extend_from_slice(k);
        buf.extend_from_slice(v);
    }
    buf
}

/// `bytes` as page `id`, padded to whole pages, the overflow set to match.
pub(super) fn as_page(mut bytes: Vec<u8>, id: u64, ps: usize) -> Vec<u8> {
    let pages = bytes.len().div_ceil(ps).max(1);
    bytes.resize(pages * ps, 0);
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
    bytes
}

pub(super) fn leaf(id: u64, entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    as_page(inline_leaf(entries), id, PS)
}

pub(super) fn branch(id: u64, children: &[(&[u8], u64)], ps: usize) -> Vec<u8> {
    let data_start = 16 + children.len() * 16;
    let mut buf = vec![0u8; data_start];
    header(&mut buf, id, 0x01, children.len(), 0);
    for (i, (k, child)) in children.iter().enumerate() {
        let elem = 16 + i * 16;
        let pos = (buf.len() - elem) as u32;
        buf[elem..elem + 4].copy_from_slice(&pos.to_le_bytes());
        buf[elem + 4..elem + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
        buf[elem + 8..elem + 16].copy_from_slice(&child.to_le_bytes());
        buf.extend_from_slice(k);
    }
    as_page(buf, id, ps)
}

pub(super) fn meta(
    id: u64,
    ps: usize,
    root: u64,
    freelist: u64,
    high_water: u64,
    txid: u64,
) -> Vec<u8> {
    let mut buf = vec![0u8; ps];
    header(&mut buf, id, 0x04, 0, 0);
    let fields: [u64; 7] = [
        0xED0C_DAED | (2 << 32),
        ps as u64,
        root,
        0,
        freelist,
        high_water,
        txid,
    ];
    for (i, f) in fields.iter().enumerate() {
        buf[16 + i * 8..24 + i * 8].copy_from_slice(&f.to_le_bytes());
    }
    sign(&mut buf);
    buf
}

/// Recompute a meta page's checksum.
pub(super) fn sign(page: &mut [u8]) {
    let sum = bbolt::fnv1a(&page[16..72]);
    page[72..80].copy_from_slice(&sum.to_le_bytes());
}

pub(super) fn freelist(id: u64, ids: &[u64]) -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    header(&mut buf, id, 0x10, ids.len(), 0);
    ids.iter()
        .for_each(|i| buf.extend_from_slice(&i.to_le_bytes()));
    as_page(buf, id, PS)
}

pub(super) fn bucket(root: u64, inline: Option<Vec<u8>>) -> Vec<u8> {
    let mut v = root.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend(inline.unwrap_or_default());
    v
}

pub(super) fn rev(main: u64, sub: u64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

pub(super) const CONSISTENT_INDEX: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 42];

/// A small etcd-shaped database: bucket "key" with a branch page over two leaves (one with
/// overflow), an inline bucket "meta" holding an inline nested bucket, a freelist with one page.
pub(super) fn sample() -> Vec<u8> {
    let big = vec![b'x'; 6000];
    let tombstone = [rev(4, 0), b"t".to_vec()].concat();
    let nested = bucket(0, Some(inline_leaf(&[(0, b"a", b"b")])));
    let meta_bucket = inline_leaf(&[
        (0, b"consistent_index", CONSISTENT_INDEX),
        (BUCKET, b"nested", &nested),
    ]);
    let pages = [
        meta(0, PS, 2, 7, 9, 5),
        meta(1, PS, 2, 7, 9, 4),
        leaf(
            2,
            &[
                (BUCKET, b"key", &bucket(3, None)),
                (BUCKET, b"meta", &bucket(0, Some(meta_bucket))),
            ],
        ),
        branch(3, &[(&rev(1, 0), 4), (&rev(3, 0), 5)], PS),
        leaf(
            4,
            &[
                (0, &rev(1, 0), b"v1"),
                (0, &rev(2, 0), b"v2"),
                (0, &rev(2, 1), b"v3"),
            ],
        ),
        leaf(5, &[(0, &rev(3, 0), &big), (0, &tombstone, b"gone")]), // pages 5 and 6
        freelist(7, &[8]),
        leaf(8, &[]),
    ];
    pages.concat()
}

pub(super) fn sample_expected() -> status::Contents {
    let mut crc = Crc32c::default();
    let parts: [&[u8]; 14] = [
        b"key",
        &rev(1, 0),
        b"v1",
        &rev(2, 0),
        b"v2",
        &rev(2, 1),
        b"v3",
        &rev(3, 0),
        &[b'x'; 6000],
        &[rev(4, 0), b"t".to_vec()].concat(),
        b"gone",
        b"meta",
        b"consistent_index",
        CONSISTENT_INDEX,
    ];
    parts.iter().for_each(|p| crc.update(p));
    crc.update(b"nested");
    status::Contents {
        hash: crc.0,
        revision: 4,
        total_keys: 7,
        total_size: 9 * PS as u64,
    }
}

pub(super) fn read_bytes(bytes: &[u8]) -> Result<status::Contents, Fault> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    status::read(&file, bytes.len() as u64)
}

pub(super) fn corruption(bytes: &[u8]) -> Corruption {
    match read_bytes(bytes) {
        Err(Fault::Corrupt(c)) => c,
        other => panic!("expected a corruption, got {other:?}"),
    }
}

pub(super) fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offset of field `at` in page `page`.
pub(super) fn off(page: usize, at: usize) -> usize {
    page * PS + at
}
