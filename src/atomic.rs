//! Files replaced whole: written to a temporary file beside the target,
//! then renamed over it, so that a reader, or drsnd after a crash, finds
//! the old file or the new one and never half of one. Each caller names
//! how much a power cut may take ([`Durability`]): flushing costs an SD
//! card dearly, and not every file is worth it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash of drsnd, not a power cut: nothing is flushed (evidence
    /// snapshots, a mark that may safely lag behind).
    Crash,
    /// A power cut, for the file's contents: they are flushed before the
    /// rename (`fdatasync`), the rename may still be lost (a log rewrite
    /// whose old version is as good).
    Contents,
    /// A power cut, whole: contents flushed (`fsync`) before the rename,
    /// and the rename flushed with its directory (the machine state, a
    /// learned baseline).
    Whole,
}

/// Replaces `path` with `bytes`, creating its folder if need be.
pub fn write(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    write_with(path, durability, |f| f.write_all(bytes))
}

/// Replaces `path` with what `fill` writes into the temporary file.
pub fn write_with(
    path: &Path,
    durability: Durability,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temporary(path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        match durability {
            Durability::Crash => Ok(()),
            Durability::Contents => f.sync_data(),
            Durability::Whole => f.sync_all(),
        }
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durability == Durability::Whole {
        File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}

/// `name.ext` -> `name.ext.tmp`, in the same directory (a rename does not
/// cross file systems).
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/state.json");
        for (text, d) in [
            ("one", Durability::Crash),
            ("two", Durability::Contents),
            ("three", Durability::Whole),
        ] {
            write(&path, text.as_bytes(), d).expect("written");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        }
        let failed = write_with(&path, Durability::Whole, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "three");
        let left: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("state.json")]);
    }
}
