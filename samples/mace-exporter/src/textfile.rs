// SPDX-License-Identifier: GPL-2.0

//! Writing the exposition to a file atomically, for node_exporter's
//! textfile collector.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary file next to `path` that [`write_atomic`] renames over
/// it: `.NAME.tmp` in the same directory (so the rename stays within one
/// file system, and the collector, which reads `*.prom`, skips it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mace.prom".to_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with `text` atomically: a reader sees the old file or
/// the new one, whole, never a part. Writes a temporary file in the same
/// directory, syncs it and renames it over `path`; the temporary file is
/// removed if any step fails.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = TempDir::new("textfile");
        let path = dir.path().join("mace.prom");
        fs::write(&path, "old\n").unwrap();
        write_atomic(&path, "new 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new 1\n");
        assert_eq!(temp_path(&path), dir.path().join(".mace.prom.tmp"));
        assert!(!temp_path(&path).exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["mace.prom"]);
    }

    #[test]
    fn keeps_the_old_file_when_the_rename_fails() {
        let dir = TempDir::new("textfile-fail");
        // A directory in the way: the rename over it fails.
        let path = dir.path().join("busy.prom");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        assert!(write_atomic(&path, "new\n").is_err());
        assert!(path.is_dir());
        assert!(!temp_path(&path).exists());
        // A missing directory: the temporary file cannot be made.
        assert!(write_atomic(&dir.path().join("no/such.prom"), "x").is_err());
    }
}
