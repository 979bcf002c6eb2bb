//! Hand-built bbolt databases (the layout bbolt writes) and garbage: exact results for the
//! former, typed errors and no panics for damaged and random files.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::bbolt::{self, Fault};
use super::status::{self, Crc32c};
use super::*;

mod sample;

use sample::*;

#[test]
fn crc32c_matches_the_castagnoli_check_value() {
    let mut c = Crc32c::default();
    c.update(b"1234");
    c.update(b"56789");
    assert_eq!(c.0, 0xE306_9283);
}

#[test]
fn sample_database_gives_etcds_status() {
    assert_eq!(read_bytes(&sample()).unwrap(), sample_expected());
}

#[test]
fn inspect_checks_the_trailer_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = sample();
    let mut snapshot = db.clone();
    snapshot.extend_from_slice(&Sha256::digest(&db));
    let path = dir.path().join("snap.db");
    std::fs::write(&path, &snapshot).unwrap();
    let status = inspect(&path).unwrap();
    assert_eq!(status.integrity, Integrity::Verified);
    assert_eq!(
        (status.hash, status.file_size),
        (sample_expected().hash, snapshot.len() as u64)
    );
    assert_eq!(status.sha256, hex(&Sha256::digest(&snapshot)));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["integrity"], "verified");
    assert_eq!(json["totalKeys"], 7);
    assert_eq!(json["totalSize"], 9 * PS);

    std::fs::write(&path, &db).unwrap();
    assert_eq!(inspect(&path).unwrap().integrity, Integrity::Absent);

    let mut flipped = snapshot.clone();
    flipped[5 * PS + 100] ^= 0x80;
    std::fs::write(&path, &flipped).unwrap();
    let err = inspect(&path).unwrap_err();
    assert!(
        matches!(err, SnapshotFileError::IntegrityMismatch { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        inspect(&path),
        Err(SnapshotFileError::Empty { .. })
    ));
    assert!(matches!(
        inspect(dir.path()),
        Err(SnapshotFileError::NotAFile { .. })
    ));
}

#[test]
fn damaged_meta_pages() {
    let zeros = vec![0u8; 4 * PS];
    assert!(matches!(
        corruption(&zeros),
        Corruption::InvalidMeta {
            page: 0,
            fault: MetaFault::NotMeta { .. }
        }
    ));
    // Meta 0 damaged: bbolt falls back to meta 1 (same tree, older txid).
    let mut db = sample();
    db[off(0, 40)] ^= 1;
    assert_eq!(read_bytes(&db).unwrap(), sample_expected());
    // Both damaged.
    db[off(1, 40)] ^= 1;
    assert!(matches!(
        corruption(&db),
        Corruption::InvalidMeta {
            page: 0,
            fault: MetaFault::BadChecksum
        }
    ));
    let mut db = sample();
    for page in [0, 1] {
        db[off(page, 16)] ^= 0xFF;
        sign(&mut db[page * PS..(page + 1) * PS]);
    }
    assert!(matches!(
        corruption(&db),
        Corruption::InvalidMeta {
            fault: MetaFault::BadMagic(_),
            ..
        }
    ));
}

type Damage = fn(&mut Vec<u8>);
type Expected = fn(&Corruption) -> bool;

/// Each case's damage done to the sample database gives the corruption it names.
fn damaged_samples_give(cases: Vec<(&str, Damage, Expected)>) {
    for (what, damage, expected) in cases {
        let mut db = sample();
        damage(&mut db);
        let c = corruption(&db);
        assert!(expected(&c), "{what}: {c:?}");
    }
}

#[test]
fn damaged_tree_pages_give_typed_errors() {
    damaged_samples_give(vec![
        (
            "branch child is itself",
            |db| put_u64(db, off(3, 16 + 8), 3),
            |c| matches!(c, Corruption::MultipleReferences { page: 3 }),
        ),
        (
            "two branch children share a page",
            |db| put_u64(db, off(3, 32 + 8), 4),
            |c| matches!(c, Corruption::MultipleReferences { page: 4 }),
        ),
        (
            "branch child is a meta page",
            |db| put_u64(db, off(3, 16 + 8), 1),
            |c| matches!(c, Corruption::MultipleReferences { page: 1 }),
        ),
        (
            "branch child beyond the high-water mark",
            |db| put_u64(db, off(3, 16 + 8), 9),
            |c| {
                matches!(
                    c,
                    Corruption::PageOutOfRange {
                        page: 9,
                        high_water: 9
                    }
                )
            },
        ),
        (
            "huge overflow",
            |db| db[off(4, 12)..off(4, 16)].fill(0xFF),
            |c| matches!(c, Corruption::PageOutOfRange { page: 4, .. }),
        ),
        (
            "element outside the page",
            |db| db[off(4, 16 + 4)..off(4, 16 + 8)].fill(0xFF),
            |c| matches!(c, Corruption::ElementOutOfPage { page: 4, index: 0 }),
        ),
        (
            "too many elements",
            |db| db[off(4, 10)..off(4, 12)].fill(0xFF),
            |c| matches!(c, Corruption::ElementOutOfPage { page: 4, .. }),
        ),
        (
            "freelist flags on a tree page",
            |db| db[off(4, 8)] = 0x10,
            |c| {
                matches!(
                    c,
                    Corruption::WrongPageType {
                        page: 4,
                        flags: 0x10,
                        ..
                    }
                )
            },
        ),
        (
            "header of another page",
            |db| put_u64(db, off(4, 0), 8),
            |c| matches!(c, Corruption::PageIdMismatch { page: 4, found: 8 }),
        ),
    ]);
}

#[test]
fn damaged_freelists_buckets_and_files_give_typed_errors() {
    damaged_samples_give(vec![
        (
            "page both used and free",
            |db| put_u64(db, off(7, 16), 4),
            |c| matches!(c, Corruption::ReachableFreed { page: 4 }),
        ),
        (
            "page neither used nor free",
            |db| db[off(7, 10)] = 0,
            |c| matches!(c, Corruption::UnreachableUnfreed { page: 8 }),
        ),
        (
            "top-level key that is no bucket",
            |db| db[off(2, 16)] = 0,
            |c| matches!(c, Corruption::NotABucket { name } if name == "key"),
        ),
        (
            "inline bucket too short",
            |db| db[off(2, 32 + 12)] = 8,
            |c| matches!(c, Corruption::BadBucketValue { page: 2 }),
        ),
        (
            "short revision key",
            |db| db[off(4, 16 + 8)] = 3,
            |c| matches!(c, Corruption::BadRevisionKey { len: 3 }),
        ),
        (
            "last page missing",
            |db| db.truncate(8 * PS),
            |c| matches!(c, Corruption::Truncated { .. }),
        ),
        (
            "partial page",
            |db| db.truncate(9 * PS - 1),
            |c| matches!(c, Corruption::PartialPage { .. }),
        ),
        (
            "tiny file",
            |db| db.truncate(40),
            |c| matches!(c, Corruption::TooShort { len: 40 }),
        ),
    ]);
}

#[test]
fn deep_chain_of_branch_pages_is_refused() {
    // 512-byte pages: each branch page's only child is the next page.
    let ps = 512;
    let n = bbolt::MAX_DEPTH as u64 + 10;
    let mut db = [
        meta(0, ps, 2, u64::MAX, n + 2, 1),
        meta(1, ps, 2, u64::MAX, n + 2, 0),
    ]
    .concat();
    for id in 2..n + 2 {
        db.extend(branch(id, &[(b"k", id + 1)], ps));
    }
    let c = corruption(&db);
    assert!(matches!(c, Corruption::TooDeep { .. }), "{c:?}");
}

#[test]
fn inline_buckets_sharing_their_bytes_are_refused_quickly() {
    // Each level is an inline bucket whose two entries both point at the same next level: 2^50
    // visits if shared bytes were walked again and again.
    let mut value = bucket(0, Some(inline_leaf(&[])));
    for _ in 0..50 {
        let mut page = inline_leaf(&[(BUCKET, b"", &value)]);
        header(&mut page, 0, 0x02, 2, 0);
        // A second element, placed after the first, pointing at the first one's value.
        let first_pos = u32::from_le_bytes(page[20..24].try_into().unwrap());
        let mut second = page[16..32].to_vec();
        second[4..8].copy_from_slice(&(first_pos - 16).to_le_bytes());
        let mut shared = page[..32].to_vec();
        shared.extend(second);
        // Shift the data by the new element: both positions grow by 16.
        for elem in [16, 32] {
            let pos = u32::from_le_bytes(shared[elem + 4..elem + 8].try_into().unwrap());
            shared[elem + 4..elem + 8].copy_from_slice(&(pos + 16).to_le_bytes());
        }
        shared.extend_from_slice(&page[32..]);
        value = bucket(0, Some(shared));
    }
    let db = [
        meta(0, PS, 2, u64::MAX, 3, 1),
        meta(1, PS, 2, u64::MAX, 3, 0),
        leaf(2, &[(BUCKET, b"bomb", &value)]),
    ]
    .concat();
    let started = Instant::now();
    let c = corruption(&db);
    assert!(matches!(c, Corruption::Overlapping { page: 2 }), "{c:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// xorshift64*: reproducible garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let started = Instant::now();
    let lengths = (0..200)
        .map(|i| i * 97 + 1)
        .chain([PS, 2 * PS, 3 * PS + 32, 16 * PS]);
    for len in lengths {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert!(inspect(&path).is_err(), "{len} random bytes passed");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn random_pages_behind_valid_metas_never_panic() {
    let file = tempfile::tempfile().unwrap();
    let mut rng = Rng(0x0dd_ba11_2024);
    let started = Instant::now();
    for _ in 0..300 {
        let high_water = 2 + rng.below(10) as u64;
        let root = rng.below(high_water as usize + 2) as u64;
        let freelist = [u64::MAX, rng.below(high_water as usize + 1) as u64][rng.below(2)];
        let mut db = [
            meta(0, PS, root, freelist, high_water, 2),
            meta(1, PS, root, freelist, high_water, 1),
        ]
        .concat();
        for id in 2..high_water {
            let mut page: Vec<u8> = (0..PS).map(|_| rng.next() as u8).collect();
            // Plausible headers, small counts and page ids, so the walk gets going.
            header(
                &mut page,
                id,
                [0x01, 0x02, 0x10][rng.below(3)],
                rng.below(8),
                rng.below(2),
            );
            for slot in 0..8 {
                let at = 16 + slot * 16 + 8;
                page[at..at + 8]
                    .copy_from_slice(&(rng.below(high_water as usize + 1) as u64).to_le_bytes());
            }
            db.extend(page);
        }
        file.set_len(0).unwrap();
        file.write_all_at(&db, 0).unwrap();
        let _ = status::read(&file, db.len() as u64);
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn mutated_sample_databases_never_panic() {
    let file = tempfile::tempfile().unwrap();
    let mut rng = Rng(0xfeed_f00d_0042);
    let started = Instant::now();
    let sample = sample();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..2000 {
        let mut db = sample.clone();
        for _ in 0..1 + rng.below(6) {
            let at = 2 * PS + rng.below(db.len() - 2 * PS - 8);
            match rng.below(3) {
                0 => db[at] ^= 1 << rng.below(8),
                1 => put_u64(&mut db, at & !7, rng.below(12) as u64),
                _ => db[at] = rng.next() as u8,
            }
        }
        if rng.below(4) == 0 {
            let page = rng.below(2);
            put_u64(
                &mut db,
                off(page, 16 + [16, 32, 40][rng.below(3)]),
                rng.below(12) as u64,
            );
            sign(&mut db[page * PS..(page + 1) * PS]);
        }
        file.set_len(0).unwrap();
        file.write_all_at(&db, 0).unwrap();
        match status::read(&file, db.len() as u64) {
            Ok(_) => ok += 1,
            Err(Fault::Corrupt(_)) => failed += 1,
            Err(Fault::Io(e)) => panic!("i/o error on a full file: {e}"),
        }
    }
    // Both outcomes happen: the mutations reach past the checks and the checks catch some.
    assert!(ok > 0 && failed > 0, "{ok} passed, {failed} failed");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A database whose top-level bucket "nest" starts a chain of `levels` buckets, each a leaf page
/// spanning `span_pages` pages (mostly one large value, left as a hole of zeros in a sparse
/// file) with the next bucket nested in it. Returns the file and the database length.
fn nested_spans(levels: u64, span_pages: u64) -> (std::fs::File, u64) {
    let file = tempfile::tempfile().unwrap();
    let first = 3;
    let high_water = first + levels * span_pages;
    let db_len = high_water * PS as u64;
    file.set_len(db_len).unwrap();
    let write = |id: u64, bytes: &[u8]| file.write_all_at(bytes, id * PS as u64).unwrap();
    write(0, &meta(0, PS, 2, u64::MAX, high_water, 1));
    write(1, &meta(1, PS, 2, u64::MAX, high_water, 0));
    write(2, &leaf(2, &[(BUCKET, b"nest", &bucket(first, None))]));
    for level in 0..levels {
        let id = first + level * span_pages;
        let next = id + span_pages;
        let child: Vec<u8> = if level + 1 < levels {
            bucket(next, None)
        } else {
            bucket(0, Some(inline_leaf(&[])))
        };
        // Element 0: the nested bucket; element 1: a value filling the rest of the span.
        let mut page = inline_leaf(&[(BUCKET, b"b", &child), (0, b"v", b"")]);
        let used = page.len() as u64;
        let vsize = span_pages * PS as u64 - used;
        page[16 + 16 + 12..16 + 16 + 16].copy_from_slice(&(vsize as u32).to_le_bytes());
        page[..8].copy_from_slice(&id.to_le_bytes());
        page[12..16].copy_from_slice(&((span_pages - 1) as u32).to_le_bytes());
        write(id, &page);
    }
    (file, db_len)
}

/// Eight nested buckets of 64 MiB spans: before, every level's span stayed in memory while the
/// next was walked (530 MB). Now what is held at once is capped, and the walk refuses instead.
#[test]
fn nested_spans_are_held_within_a_bound() {
    let (file, db_len) = nested_spans(8, (64 << 20) / PS as u64);
    let mut top = status_visitor();
    match bbolt::walk_measured(&file, db_len, &mut top) {
        Err(Fault::Corrupt(Corruption::TooMuchHeld { held, .. })) => {
            assert!(held <= bbolt::MAX_HELD, "{held}")
        }
        other => panic!("expected TooMuchHeld, got {other:?}"),
    }
    // Eight levels of 4 MiB: read, and the most held at once is the chain's spans, no more.
    let (file, db_len) = nested_spans(8, (4 << 20) / PS as u64);
    let (size, most_held) = bbolt::walk_measured(&file, db_len, &mut status_visitor()).unwrap();
    assert_eq!(size, db_len);
    assert!(
        most_held <= 8 * (4 << 20) + PS as u64,
        "{most_held} bytes held at once"
    );
    assert!(most_held >= 8 * (4 << 20), "{most_held}");
}

fn status_visitor() -> bbolt::Nested {
    bbolt::Nested
}

/// A sparse 4 GiB file of zeros is refused by its header, at once: before, the whole file was
/// hashed first (22 s).
#[test]
fn a_file_of_zeros_is_refused_by_its_header_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.db");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(4 << 30).unwrap();
    drop(f);
    let started = Instant::now();
    let err = inspect(&path).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            SnapshotFileError::Corrupt {
                source: Corruption::InvalidMeta { page: 0, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}
