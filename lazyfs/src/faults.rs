//! Disk faults a daemon injects, chosen at run time through its control
//! file, and the parsing of that file.
//!
//! The control file holds one line of whitespace-separated `key=value`
//! tokens (a trailing newline is fine; any whitespace separates tokens).
//! The file says everything at once: a key it leaves out takes its
//! default, so an empty or missing file means no faults.
//!
//! - `fsync=ok|eio`: fsync of a regular file answers EIO (and poisons the
//!   file's unsynced pages, see `state.rs`);
//! - `write=ok|eio|enospc`: write answers EIO or ENOSPC, storing nothing;
//! - `delay-us=N` (0..=1_000_000): every read, write and fsync waits N µs
//!   before it is served;
//! - `tear-bytes=N` (1..=4095, default 2048): how much of the last written
//!   unsynced page reaches the disk at a torn power cut (SIGUSR2).
//!
//! A bad file (unknown key, bad value, a key given twice, not UTF-8, over
//! 4096 bytes) is rejected whole with an error naming the first bad token;
//! the daemon then keeps the faults it had.
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// Longest delay a control file may ask for.
pub const DELAY_US_MAX: u32 = 1_000_000;
/// Most bytes of a page a torn cut writes (one short of a whole page: a
/// whole page would be no tear).
pub const TEAR_BYTES_MAX: u32 = 4095;
/// Bytes a torn cut writes when the control file does not say.
pub const TEAR_BYTES_DEFAULT: u32 = 2048;
/// Longest control file read; longer ones are rejected.
pub const CONTROL_BYTES_MAX: u64 = 4096;

/// What fsync of a regular file answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncFault {
    #[default]
    Ok,
    Eio,
}

/// What a write answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteFault {
    #[default]
    Ok,
    Eio,
    Enospc,
}

/// The faults in force; the default is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub fsync: FsyncFault,
    pub write: WriteFault,
    /// Wait before serving each read, write and fsync.
    pub delay_us: u32,
    /// Bytes of the last written unsynced page a torn cut writes through.
    pub tear_bytes: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { fsync: FsyncFault::Ok, write: WriteFault::Ok, delay_us: 0, tear_bytes: TEAR_BYTES_DEFAULT }
    }
}

/// The control-file form: parsing it gives the same faults back.
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fsync = match self.fsync {
            FsyncFault::Ok => "ok",
            FsyncFault::Eio => "eio",
        };
        let write = match self.write {
            WriteFault::Ok => "ok",
            WriteFault::Eio => "eio",
            WriteFault::Enospc => "enospc",
        };
        write!(f, "fsync={fsync} write={write} delay-us={} tear-bytes={}", self.delay_us, self.tear_bytes)
    }
}

/// Why a control file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read it: {0}")]
    Read(io::Error),
    #[error("longer than {CONTROL_BYTES_MAX} bytes")]
    TooLong,
    #[error("not UTF-8")]
    NotUtf8,
    /// `token` is printed quoted and escaped, so the message stays one line.
    #[error("token {token:?}: {why}")]
    Token { token: String, why: &'static str },
}

/// Parse a control line (see the module doc).
pub fn parse(text: &str) -> Result<Faults, ControlError> {
    let mut faults = Faults::default();
    // Known keys only (an unknown one returns first): at most four.
    let mut seen: Vec<&str> = Vec::with_capacity(4);
    for token in text.split_whitespace() {
        let bad = |why| ControlError::Token { token: token.to_string(), why };
        let (key, value) = token.split_once('=').ok_or_else(|| bad("not key=value"))?;
        match key {
            "fsync" => faults.fsync = fsync_fault(value).ok_or_else(|| bad("fsync is ok or eio"))?,
            "write" => faults.write = write_fault(value).ok_or_else(|| bad("write is ok, eio or enospc"))?,
            "delay-us" => {
                faults.delay_us = number(value, 0, DELAY_US_MAX).ok_or_else(|| bad("delay-us is 0..=1000000"))?
            }
            "tear-bytes" => {
                faults.tear_bytes = number(value, 1, TEAR_BYTES_MAX).ok_or_else(|| bad("tear-bytes is 1..=4095"))?
            }
            _ => return Err(bad("unknown key (known: fsync, write, delay-us, tear-bytes)")),
        }
        if seen.contains(&key) {
            return Err(bad("key given twice"));
        }
        seen.push(key);
    }
    Ok(faults)
}

/// Read and parse the control file at `path`; a missing file means no
/// faults.
pub fn read_control(path: &Path) -> Result<Faults, ControlError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Faults::default()),
        Err(error) => return Err(ControlError::Read(error)),
    };
    let mut bytes = Vec::new();
    // One byte past the bound tells a file at the bound from a longer one.
    file.take(CONTROL_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(ControlError::Read)?;
    if bytes.len() as u64 > CONTROL_BYTES_MAX {
        return Err(ControlError::TooLong);
    }
    parse(std::str::from_utf8(&bytes).map_err(|_| ControlError::NotUtf8)?)
}

fn fsync_fault(value: &str) -> Option<FsyncFault> {
    match value {
        "ok" => Some(FsyncFault::Ok),
        "eio" => Some(FsyncFault::Eio),
        _ => None,
    }
}

fn write_fault(value: &str) -> Option<WriteFault> {
    match value {
        "ok" => Some(WriteFault::Ok),
        "eio" => Some(WriteFault::Eio),
        "enospc" => Some(WriteFault::Enospc),
        _ => None,
    }
}

/// A decimal in `min..=max`.
fn number(value: &str, min: u32, max: u32) -> Option<u32> {
    value.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(text: &str) -> String {
        match parse(text) {
            Ok(faults) => panic!("{text:?} parsed as {faults}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_empty_line_means_no_faults() {
        assert_eq!(parse("").unwrap(), Faults::default());
        assert_eq!(parse(" \n\t\n").unwrap(), Faults::default());
        assert_eq!(Faults::default().tear_bytes, TEAR_BYTES_DEFAULT);
    }

    #[test]
    fn every_key_and_value_parses() {
        assert_eq!(parse("fsync=eio").unwrap().fsync, FsyncFault::Eio);
        assert_eq!(parse("fsync=ok").unwrap().fsync, FsyncFault::Ok);
        assert_eq!(parse("write=eio").unwrap().write, WriteFault::Eio);
        assert_eq!(parse("write=enospc").unwrap().write, WriteFault::Enospc);
        assert_eq!(parse("write=ok").unwrap().write, WriteFault::Ok);
        assert_eq!(parse("delay-us=0").unwrap().delay_us, 0);
        assert_eq!(parse("delay-us=1000000").unwrap().delay_us, 1_000_000);
        assert_eq!(parse("tear-bytes=1").unwrap().tear_bytes, 1);
        assert_eq!(parse("tear-bytes=4095").unwrap().tear_bytes, 4095);
        let all = parse("fsync=eio  write=enospc\tdelay-us=250 tear-bytes=100\n").unwrap();
        let expected = Faults { fsync: FsyncFault::Eio, write: WriteFault::Enospc, delay_us: 250, tear_bytes: 100 };
        assert_eq!(all, expected);
        assert_eq!(parse(&all.to_string()).unwrap(), all, "the display form parses back");
    }

    #[test]
    fn bad_tokens_are_rejected_naming_the_token() {
        assert_eq!(rejected("fsync=maybe"), r#"token "fsync=maybe": fsync is ok or eio"#);
        assert_eq!(rejected("write=full"), r#"token "write=full": write is ok, eio or enospc"#);
        assert!(rejected("delay-us=1000001").contains(r#""delay-us=1000001""#));
        assert!(rejected("delay-us=-1").contains("delay-us is"));
        assert!(rejected("delay-us=").contains("delay-us is"));
        assert!(rejected("tear-bytes=0").contains("tear-bytes is"));
        assert!(rejected("tear-bytes=4096").contains("tear-bytes is"));
        assert!(rejected("tear-bytes=0x10").contains("tear-bytes is"));
        assert!(rejected("fsync=ok colour=red").contains(r#""colour=red": unknown key"#));
        assert!(rejected("fsync").contains("not key=value"));
        assert!(rejected("fsync=eio fsync=ok").contains("given twice"));
        assert!(rejected("FSYNC=eio").contains("unknown key"), "keys are case-sensitive");
    }

    #[test]
    fn a_rejection_stays_on_one_line_whatever_the_file_holds() {
        let message = rejected("x=\u{7}\u{1b}[2J");
        assert!(!message.contains('\n') && !message.contains('\u{1b}'), "{message}");
    }

    #[test]
    fn control_files_are_read_with_bounds() {
        let dir = std::env::temp_dir().join(format!("faultline-lazyfs-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control");
        assert_eq!(read_control(&path).unwrap(), Faults::default(), "a missing file is no faults");
        std::fs::write(&path, "fsync=eio\n").unwrap();
        assert_eq!(read_control(&path).unwrap().fsync, FsyncFault::Eio);
        std::fs::write(&path, [b'f', 0xff, b'\n']).unwrap();
        assert!(matches!(read_control(&path), Err(ControlError::NotUtf8)));
        std::fs::write(&path, " ".repeat(CONTROL_BYTES_MAX as usize)).unwrap();
        assert_eq!(read_control(&path).unwrap(), Faults::default(), "a file at the bound is read");
        std::fs::write(&path, " ".repeat(CONTROL_BYTES_MAX as usize + 1)).unwrap();
        assert!(matches!(read_control(&path), Err(ControlError::TooLong)));
        assert!(matches!(read_control(&dir), Err(ControlError::Read(_))), "a directory cannot be read");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
