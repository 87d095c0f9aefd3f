// SPDX-License-Identifier: GPL-2.0

//! Helpers of the unit tests: temporary directories and a fake `/proc`.

use std::path::{Path, PathBuf};

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("mace-exporter-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes `proc/PID` with an `ns/net` link to `net:[INUM]` and a `cgroup`
/// file.
pub fn fake_process(proc: &Path, pid: u32, inum: u32, cgroup: &str) {
    let dir = proc.join(pid.to_string());
    std::fs::create_dir_all(dir.join("ns")).unwrap();
    std::os::unix::fs::symlink(format!("net:[{inum}]"), dir.join("ns/net")).unwrap();
    std::fs::write(dir.join("cgroup"), cgroup).unwrap();
}
