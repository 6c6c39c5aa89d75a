//! What one file looks like to its readers while part of it exists only in
//! memory: the page cache of a disk that has not been flushed.
//!
//! Writes and truncations land here; reads see them merged over the backing
//! file; `sync` (the file's `fsync`) writes them through. Dropping a
//! `VolatileFile` without syncing is the power cut: the backing file keeps
//! only what was synced. Pure logic over the [`Backing`] trait, so it is
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

/// The unsynced state of one file.
#[derive(Debug)]
pub struct VolatileFile {
    /// Page index → the page as readers see it (bytes past `size` are zero).
    pages: BTreeMap<u64, Box<[u8; PAGE]>>,
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
        VolatileFile { pages: BTreeMap::new(), size: durable_size, hole_from: durable_size, durable_size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held only in memory (whole pages).
    pub fn dirty_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE_BYTES
    }

    /// True when the backing file already says everything readers see.
    pub fn is_clean(&self) -> bool {
        self.pages.is_empty() && self.size == self.durable_size && self.hole_from == self.durable_size
    }

    /// Write `data` at `offset`; returns the growth of `dirty_bytes`.
    pub fn write(&mut self, backing: &dyn Backing, offset: u64, data: &[u8]) -> io::Result<u64> {
        let end = offset.checked_add(data.len() as u64).ok_or_else(too_large)?;
        let dirty_before = self.dirty_bytes();
        let mut written = 0usize;
        while written < data.len() {
            let at = offset + written as u64;
            let index = at / PAGE_BYTES;
            let within = (at % PAGE_BYTES) as usize;
            let count = (PAGE - within).min(data.len() - written);
            if !self.pages.contains_key(&index) {
                let page = self.load_page(backing, index)?;
                self.pages.insert(index, page);
            }
            if let Some(page) = self.pages.get_mut(&index) {
                page[within..within + count].copy_from_slice(&data[written..written + count]);
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
                Some(page) => out.extend_from_slice(&page[within..within + count]),
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
            let within = (size % PAGE_BYTES) as usize;
            if within > 0 {
                if let Some(page) = self.pages.get_mut(&(size / PAGE_BYTES)) {
                    page[within..].fill(0);
                }
            }
            self.hole_from = self.hole_from.min(size);
        }
        self.size = size;
    }

    /// Write every cached page and the size through to the backing file
    /// (the file's fsync). Afterwards the cache is clean.
    pub fn sync(&mut self, backing: &dyn Backing) -> io::Result<()> {
        // Cut what was truncated first, so the old bytes cannot reappear
        // between the pages written next. (`hole_from` never exceeds the
        // backing file's length, so without a truncation this changes
        // nothing.)
        backing.set_len(self.hole_from)?;
        for (index, page) in &self.pages {
            let start = index * PAGE_BYTES;
            let count = (self.size - start).min(PAGE_BYTES) as usize;
            backing.write_all_at(&page[..count], start)?;
        }
        backing.set_len(self.size)?;
        self.pages.clear();
        self.hole_from = self.size;
        self.durable_size = self.size;
        Ok(())
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
        file.write(&disk, 5, b" world").unwrap();
        assert_eq!(file.read(&disk, 0, 100).unwrap(), b"hello world");
        assert_eq!(*disk.0.borrow(), b"hello", "nothing reached the disk before sync");
        drop(file); // The power cut.
        assert_eq!(VolatileFile::new(5).read(&disk, 0, 100).unwrap(), b"hello");
    }

    #[test]
    fn sync_makes_writes_durable_and_leaves_the_cache_clean() {
        let disk = memory(b"");
        let mut file = VolatileFile::new(0);
        file.write(&disk, 0, &[7u8; 10_000]).unwrap();
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
        file.write(&disk, 8_000, b"x").unwrap();
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

    #[derive(Debug, Clone)]
    enum Action {
        Write(u64, Vec<u8>),
        Truncate(u64),
        Sync,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            (0u64..20_000, proptest::collection::vec(any::<u8>(), 0..6_000)).prop_map(|(o, d)| Action::Write(o, d)),
            (0u64..20_000).prop_map(Action::Truncate),
            Just(Action::Sync),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        /// Reads always match a plain in-memory file given the same writes
        /// and truncations; after each sync the disk matches it too; and a
        /// power cut restores exactly the last synced contents.
        #[test]
        fn behaves_like_a_file_whose_disk_is_the_last_sync(initial in proptest::collection::vec(any::<u8>(), 0..9_000), actions in proptest::collection::vec(action(), 1..25)) {
            let disk = memory(&initial);
            let mut model = initial.clone();
            let mut synced = initial.clone();
            let mut file = VolatileFile::new(initial.len() as u64);
            for action in actions {
                match action {
                    Action::Write(offset, data) => {
                        file.write(&disk, offset, &data).unwrap();
                        let end = offset as usize + data.len();
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data);
                    }
                    Action::Truncate(size) => {
                        file.truncate(size);
                        model.resize(size as usize, 0);
                    }
                    Action::Sync => {
                        file.sync(&disk).unwrap();
                        synced = model.clone();
                        prop_assert_eq!(&*disk.0.borrow(), &synced);
                    }
                }
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
