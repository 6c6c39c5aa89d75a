//! What one file looks like to its readers while part of it exists only in
//! memory: the page cache of a disk that has not been flushed.
//!
//! Writes and truncations land here; reads see them merged over the backing
//! file; `sync` (the file's `fsync`) writes them through. Dropping a
//! `VolatileFile` without syncing is the power cut: the backing file keeps
//! only what was synced. A failed fsync `poison`s the unsynced pages: they
//! stay readable but no later `sync` writes them (until a write makes a
//! page dirty again), as Linux marks pages clean after a failed writeback.
//! Each page remembers when it was last written, for the torn cut
//! (`last_written`). Pure logic over the [`Backing`] trait, so it is
//! tested without FUSE.
use std::collections::BTreeMap;
use std::io;

/// Bytes per cached page.
pub const PAGE_BYTES: u64 = 4096;
const PAGE: usize = PAGE_BYTES as usize;

/// The durable file under the cache (a real file, or memory in tests).
pub trait Backing {
    /// Read at `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl Backing for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

/// One cached page.
#[derive(Debug)]
struct Page {
    /// The page as readers see it (bytes past the size are zero).
    bytes: Box<[u8; PAGE]>,
    /// The caller's sequence number of the last write to this page.
    write_seq: u64,
    /// A failed fsync covered this page: it is held for readers but never
    /// written through (it does not count as dirty).
    poisoned: bool,
}

/// The unsynced page written last, as a torn power cut writes it: its
/// first bytes, at its offset.
#[derive(Debug, PartialEq, Eq)]
pub struct TornPage<'a> {
    pub write_seq: u64,
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// The unsynced state of one file.
#[derive(Debug)]
pub struct VolatileFile {
    /// Page index → the cached page.
    pages: BTreeMap<u64, Page>,
    /// How many of `pages` are poisoned.
    poisoned_count: u64,
    /// The size readers see.
    size: u64,
    /// Backing bytes at or past this offset were truncated away since the
    /// last sync: they read as zeros even where the backing file still has
    /// them.
    hole_from: u64,
    /// The backing file's length (as of creation or the last sync).
    durable_size: u64,
}

impl VolatileFile {
    /// A clean cache over a backing file of `durable_size` bytes.
    pub fn new(durable_size: u64) -> Self {
        VolatileFile { pages: BTreeMap::new(), poisoned_count: 0, size: durable_size, hole_from: durable_size, durable_size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held only in memory that a sync would write (whole pages;
    /// poisoned pages are not counted).
    pub fn dirty_bytes(&self) -> u64 {
        (self.pages.len() as u64 - self.poisoned_count) * PAGE_BYTES
    }

    /// True when the backing file already says everything readers see
    /// (never while a poisoned page is held).
    pub fn is_clean(&self) -> bool {
        self.pages.is_empty() && self.size == self.durable_size && self.hole_from == self.durable_size
    }

    /// Write `data` at `offset`, as write number `write_seq` (increasing
    /// over the caller's writes); returns the growth of `dirty_bytes`. A
    /// poisoned page written again is dirty again.
    pub fn write(&mut self, backing: &dyn Backing, offset: u64, data: &[u8], write_seq: u64) -> io::Result<u64> {
        let end = offset.checked_add(data.len() as u64).ok_or_else(too_large)?;
        let dirty_before = self.dirty_bytes();
        let mut written = 0usize;
        while written < data.len() {
            let at = offset + written as u64;
            let index = at / PAGE_BYTES;
            let within = (at % PAGE_BYTES) as usize;
            let count = (PAGE - within).min(data.len() - written);
            if !self.pages.contains_key(&index) {
                let bytes = self.load_page(backing, index)?;
                self.pages.insert(index, Page { bytes, write_seq, poisoned: false });
            }
            if let Some(page) = self.pages.get_mut(&index) {
                page.bytes[within..within + count].copy_from_slice(&data[written..written + count]);
                page.write_seq = write_seq;
                if page.poisoned {
                    page.poisoned = false;
                    self.poisoned_count -= 1;
                }
            }
            written += count;
        }
        self.size = self.size.max(end);
        Ok(self.dirty_bytes() - dirty_before)
    }

    /// Up to `len` bytes from `offset`, short at the end of the file.
    pub fn read(&self, backing: &dyn Backing, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(u64::from(len)).min(self.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / PAGE_BYTES;
            let within = (at % PAGE_BYTES) as usize;
            let count = ((PAGE - within) as u64).min(end - at) as usize;
            match self.pages.get(&index) {
                Some(page) => out.extend_from_slice(&page.bytes[within..within + count]),
                None => out.extend_from_slice(&self.load_page(backing, index)?[within..within + count]),
            }
            at += count as u64;
        }
        Ok(out)
    }

    /// Set the size readers see: cut (later bytes read as zeros if the file
    /// grows again) or extend with zeros.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let first_gone = size.div_ceil(PAGE_BYTES);
            self.pages.retain(|index, _| *index < first_gone);
            self.poisoned_count = self.pages.values().filter(|page| page.poisoned).count() as u64;
            let within = (size % PAGE_BYTES) as usize;
            if within > 0 {
                if let Some(page) = self.pages.get_mut(&(size / PAGE_BYTES)) {
                    page.bytes[within..].fill(0);
                }
            }
            self.hole_from = self.hole_from.min(size);
        }
        self.size = size;
    }

    /// Write every dirty page and the size through to the backing file
    /// (the file's fsync). Afterwards only poisoned pages are cached: the
    /// size they extended the file to is durable, their bytes are not.
    pub fn sync(&mut self, backing: &dyn Backing) -> io::Result<()> {
        // Cut what was truncated first, so the old bytes cannot reappear
        // between the pages written next. (`hole_from` never exceeds the
        // backing file's length, so without a truncation this changes
        // nothing.)
        backing.set_len(self.hole_from)?;
        for (index, page) in self.pages.iter().filter(|(_, page)| !page.poisoned) {
            let start = index * PAGE_BYTES;
            let count = (self.size - start).min(PAGE_BYTES) as usize;
            backing.write_all_at(&page.bytes[..count], start)?;
        }
        backing.set_len(self.size)?;
        self.pages.retain(|_, page| page.poisoned);
        self.hole_from = self.size;
        self.durable_size = self.size;
        Ok(())
    }

    /// A failed fsync: every dirty page is poisoned (kept for readers,
    /// never written through). Returns the fall of `dirty_bytes`.
    pub fn poison(&mut self) -> u64 {
        let dirty_before = self.dirty_bytes();
        for page in self.pages.values_mut() {
            page.poisoned = true;
        }
        self.poisoned_count = self.pages.len() as u64;
        dirty_before
    }

    /// The dirty page written last, cut to its first `tear_bytes` bytes
    /// (never past the size readers see); None when nothing is dirty.
    pub fn last_written(&self, tear_bytes: u32) -> Option<TornPage<'_>> {
        let (index, page) = self.pages.iter().filter(|(_, page)| !page.poisoned).max_by_key(|(_, page)| page.write_seq)?;
        let offset = index * PAGE_BYTES;
        let count = u64::from(tear_bytes).min(PAGE_BYTES).min(self.size.saturating_sub(offset)) as usize;
        Some(TornPage { write_seq: page.write_seq, offset, bytes: &page.bytes[..count] })
    }

    /// The unsynced pages below `offset` (not poisoned), whole, in order:
    /// what a write interrupted at `offset` had already put on the disk.
    pub fn whole_pages_before(&self, offset: u64) -> Vec<(u64, &[u8])> {
        let below = self.pages.range(..offset / PAGE_BYTES).filter(|(_, page)| !page.poisoned);
        below
            .map(|(index, page)| {
                let start = index * PAGE_BYTES;
                (start, &page.bytes[..PAGE_BYTES.min(self.size.saturating_sub(start)) as usize])
            })
            .collect()
    }

    /// Page `index` as readers see it, from the backing file.
    fn load_page(&self, backing: &dyn Backing, index: u64) -> io::Result<Box<[u8; PAGE]>> {
        let mut page = Box::new([0u8; PAGE]);
        let start = index * PAGE_BYTES;
        // Past the truncation point or the size, the page is zeros.
        let valid = self.hole_from.min(self.size).saturating_sub(start).min(PAGE_BYTES) as usize;
        let mut filled = 0;
        while filled < valid {
            let read = backing.read_at(&mut page[filled..valid], start + filled as u64)?;
            if read == 0 {
                break; // A short backing file reads as zeros.
            }
            filled += read;
        }
        Ok(page)
    }
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "write past the largest file offset")
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// A backing file in memory.
    #[derive(Default)]
    struct Memory(RefCell<Vec<u8>>);

    impl Backing for Memory {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let data = self.0.borrow();
            let start = (offset as usize).min(data.len());
            let count = buf.len().min(data.len() - start);
            buf[..count].copy_from_slice(&data[start..start + count]);
            Ok(count)
        }

        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut data = self.0.borrow_mut();
            let end = offset as usize + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }

        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.borrow_mut().resize(len as usize, 0);
            Ok(())
        }
    }

    fn memory(bytes: &[u8]) -> Memory {
        Memory(RefCell::new(bytes.to_vec()))
    }

    #[test]
    fn unsynced_writes_are_visible_but_not_durable() {
        let disk = memory(b"hello");
        let mut file = VolatileFile::new(5);
        file.write(&disk, 5, b" world", 1).unwrap();
        assert_eq!(file.read(&disk, 0, 100).unwrap(), b"hello world");
        assert_eq!(*disk.0.borrow(), b"hello", "nothing reached the disk before sync");
        drop(file); // The power cut.
        assert_eq!(VolatileFile::new(5).read(&disk, 0, 100).unwrap(), b"hello");
    }

    #[test]
    fn sync_makes_writes_durable_and_leaves_the_cache_clean() {
        let disk = memory(b"");
        let mut file = VolatileFile::new(0);
        file.write(&disk, 0, &[7u8; 10_000], 1).unwrap();
        assert_eq!(file.dirty_bytes(), 3 * PAGE_BYTES);
        file.sync(&disk).unwrap();
        assert!(file.is_clean());
        assert_eq!(*disk.0.borrow(), vec![7u8; 10_000]);
    }

    #[test]
    fn a_truncation_then_growth_reads_zeros_and_syncs_them() {
        let disk = memory(&[1u8; 10_000]);
        let mut file = VolatileFile::new(10_000);
        file.truncate(100);
        file.write(&disk, 8_000, b"x", 1).unwrap();
        let seen = file.read(&disk, 0, 10_000).unwrap();
        assert_eq!(seen.len(), 8_001);
        assert!(seen[..100].iter().all(|b| *b == 1));
        assert!(seen[100..8_000].iter().all(|b| *b == 0), "truncated bytes must not come back");
        file.sync(&disk).unwrap();
        assert_eq!(*disk.0.borrow(), seen);
    }

    #[test]
    fn an_unsynced_truncation_is_undone_by_the_power_cut() {
        let disk = memory(b"durable");
        let mut file = VolatileFile::new(7);
        file.truncate(0);
        assert_eq!(file.read(&disk, 0, 10).unwrap(), b"");
        assert!(!file.is_clean());
        drop(file);
        assert_eq!(*disk.0.borrow(), b"durable");
    }

    #[test]
    fn a_poisoned_page_stays_readable_but_no_sync_writes_it() {
        let disk = memory(b"durable");
        let mut file = VolatileFile::new(7);
        file.write(&disk, 7, b" lost", 1).unwrap();
        assert_eq!(file.poison(), PAGE_BYTES, "the failed fsync drops the page from the dirty count");
        assert_eq!(file.dirty_bytes(), 0);
        assert!(!file.is_clean(), "a poisoned page is still held for readers");
        file.write(&disk, 2 * PAGE_BYTES, b"later", 2).unwrap();
        assert_eq!(file.dirty_bytes(), PAGE_BYTES);
        file.sync(&disk).unwrap();
        file.sync(&disk).unwrap();
        let on_disk = disk.0.borrow().clone();
        assert_eq!(&on_disk[..12], b"durable\0\0\0\0\0", "the size is durable, the poisoned bytes are not");
        assert_eq!(&on_disk[2 * PAGE..], b"later", "other pages are written as usual");
        assert_eq!(file.read(&disk, 0, 12).unwrap(), b"durable lost", "readers still see the poisoned bytes");
        drop(file); // The power cut.
        assert_eq!(*disk.0.borrow(), on_disk);
    }

    #[test]
    fn a_rewrite_makes_a_poisoned_page_dirty_again() {
        let disk = memory(b"");
        let mut file = VolatileFile::new(0);
        file.write(&disk, 0, &[1u8; 2 * PAGE], 1).unwrap();
        file.poison();
        assert_eq!(file.write(&disk, PAGE_BYTES + 10, b"new", 2).unwrap(), PAGE_BYTES, "page 1 is dirty again");
        file.sync(&disk).unwrap();
        let on_disk = disk.0.borrow().clone();
        assert!(on_disk[..PAGE].iter().all(|b| *b == 0), "page 0 stays poisoned");
        assert_eq!(on_disk[PAGE..], file.read(&disk, PAGE_BYTES, 4096).unwrap()[..], "page 1 as readers see it");
        assert_eq!(&on_disk[PAGE + 10..PAGE + 13], b"new");
    }

    #[test]
    fn a_truncation_forgets_poisoned_pages_past_the_cut() {
        let disk = memory(b"");
        let mut file = VolatileFile::new(0);
        file.write(&disk, 0, &[1u8; 3 * PAGE], 1).unwrap();
        file.poison();
        file.write(&disk, 3 * PAGE_BYTES, b"x", 2).unwrap();
        file.truncate(PAGE_BYTES + 10);
        assert_eq!(file.dirty_bytes(), 0, "pages 0 and 1 are poisoned, 2 and 3 are gone");
        assert_eq!(file.write(&disk, PAGE_BYTES, b"y", 3).unwrap(), PAGE_BYTES);
        file.truncate(0);
        assert_eq!(file.dirty_bytes(), 0);
        file.sync(&disk).unwrap();
        assert!(file.is_clean());
    }

    #[test]
    fn the_torn_page_is_the_dirty_page_written_last_cut_to_tear_bytes() {
        let disk = memory(b"");
        let mut file = VolatileFile::new(0);
        assert_eq!(file.last_written(100), None);
        file.write(&disk, PAGE_BYTES, &[1u8; PAGE], 5).unwrap();
        file.write(&disk, 0, &[2u8; PAGE], 6).unwrap();
        let torn = file.last_written(100).unwrap();
        assert_eq!((torn.write_seq, torn.offset, torn.bytes), (6, 0, &[2u8; 100][..]), "written last, not last in the file");
        // A write over two pages ends in the later one.
        file.write(&disk, 2 * PAGE_BYTES + 100, &[3u8; PAGE], 7).unwrap();
        let torn = file.last_written(4095).unwrap();
        assert_eq!((torn.offset, torn.bytes.len()), (3 * PAGE_BYTES, 100), "never past the size readers see");
        file.poison();
        assert_eq!(file.last_written(100), None, "a poisoned page is not torn");
        file.write(&disk, 10, b"z", 8).unwrap();
        assert_eq!(file.last_written(1).unwrap().bytes, &[2u8], "the page's first bytes, not the write's");
        file.sync(&disk).unwrap();
        assert_eq!(file.last_written(100), None);
    }

    #[derive(Debug, Clone)]
    enum Action {
        Write(u64, Vec<u8>),
        Truncate(u64),
        Sync,
        /// A failed fsync.
        Poison,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            (0u64..20_000, proptest::collection::vec(any::<u8>(), 0..6_000)).prop_map(|(o, d)| Action::Write(o, d)),
            (0u64..20_000).prop_map(Action::Truncate),
            Just(Action::Sync),
            Just(Action::Poison),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        /// Reads always match a plain in-memory file given the same writes
        /// and truncations, failed fsyncs or not; after each sync the disk
        /// matches it too, except on pages a failed fsync poisoned (and
        /// no write dirtied again); and a power cut restores exactly the
        /// disk of the last sync.
        #[test]
        fn behaves_like_a_file_whose_disk_is_the_last_sync(initial in proptest::collection::vec(any::<u8>(), 0..9_000), actions in proptest::collection::vec(action(), 1..25)) {
            let disk = memory(&initial);
            let mut model = initial.clone();
            let mut synced = initial.clone();
            // Page indexes written since the last sync, and poisoned ones.
            let (mut dirty, mut poisoned) = (BTreeSet::new(), BTreeSet::new());
            // The disk's bytes from here on were truncated away since the
            // last sync.
            let mut hole = initial.len();
            let mut file = VolatileFile::new(initial.len() as u64);
            for (write_seq, action) in (1u64..).zip(actions) {
                match action {
                    Action::Write(offset, data) => {
                        file.write(&disk, offset, &data, write_seq).unwrap();
                        let end = offset as usize + data.len();
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data);
                        let touched = if data.is_empty() { 0..0 } else { offset / PAGE_BYTES..(end as u64).div_ceil(PAGE_BYTES) };
                        for index in touched {
                            dirty.insert(index);
                            poisoned.remove(&index);
                        }
                    }
                    Action::Truncate(size) => {
                        file.truncate(size);
                        if (size as usize) < model.len() {
                            hole = hole.min(size as usize);
                        }
                        model.resize(size as usize, 0);
                        dirty.retain(|index| *index < size.div_ceil(PAGE_BYTES));
                        poisoned.retain(|index| *index < size.div_ceil(PAGE_BYTES));
                    }
                    Action::Sync => {
                        file.sync(&disk).unwrap();
                        dirty.clear();
                        // A poisoned page keeps the old disk's bytes (zeros
                        // where they were truncated away or never were).
                        let expected: Vec<u8> = (0..model.len())
                            .map(|at| match poisoned.contains(&((at / PAGE) as u64)) {
                                true if at < hole => synced[at],
                                true => 0,
                                false => model[at],
                            })
                            .collect();
                        synced = disk.0.borrow().clone();
                        prop_assert_eq!(&synced, &expected);
                        hole = synced.len();
                    }
                    Action::Poison => {
                        prop_assert_eq!(file.poison(), dirty.len() as u64 * PAGE_BYTES);
                        poisoned.append(&mut dirty);
                    }
                }
                prop_assert_eq!(&*disk.0.borrow(), &synced, "only a sync writes the disk");
                prop_assert_eq!(file.dirty_bytes(), dirty.len() as u64 * PAGE_BYTES);
                prop_assert_eq!(file.size(), model.len() as u64);
                // Clean means the disk already says what readers see.
                if file.is_clean() {
                    prop_assert_eq!(&*disk.0.borrow(), &model);
                }
                prop_assert_eq!(file.read(&disk, 0, 40_000).unwrap(), model.clone());
            }
            drop(file);
            prop_assert_eq!(&*disk.0.borrow(), &synced, "the power cut keeps exactly the last sync");
        }
    }
}
