//! Where results go: stdout, or a file that appears only once it is complete.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{durable, fault, Error, Result};

/// A file written under a temporary name in its destination directory and renamed into place
/// by [`AtomicFile::commit`], after its data is synced (and the directory synced after the
/// rename), so that neither a crash nor a power cut can publish a torn file. Dropped without
/// a commit (an error, a panic), the temporary is removed; a killed process leaves only a
/// dot-prefixed `.NAME.tmp-PID-*` file, which the next writer of NAME removes.
pub struct AtomicFile {
    path: PathBuf,
    tmp_path: PathBuf,
    tmp: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.is_dir() {
            return Err(Error::msg(format!(
                "{}: is a folder; name a file to write",
                path.display()
            )));
        }
        durable::clean_stale(&path)?;
        let mut tmp_path = durable::temp_sibling(&path, "tmp")?;
        if let Some(ext) = path.extension() {
            // Writers that pick a format by extension (images) see the final one.
            tmp_path.as_mut_os_string().push(".");
            tmp_path.as_mut_os_string().push(ext);
        }
        fault::point(format_args!("create {}", tmp_path.display()));
        // Like an ordinary new file: 0666 less the umask.
        let file = fs::File::create_new(&tmp_path)
            .map_err(|e| Error::io(durable::parent_of(&path).display(), e))?;
        durable::set_live(&tmp_path, true);
        Ok(AtomicFile {
            path,
            tmp_path,
            tmp: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, for writers that take a path rather than a `Write` (it exists
    /// and is empty; write it whole before [`AtomicFile::commit`], and nothing through
    /// `Write` as well).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Flushes, syncs and renames the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        let w = self.tmp.take().expect("committed once");
        let file = w
            .into_inner()
            .map_err(|e| Error::io(self.path.display(), e.into_error()))?;
        fault::point(format_args!("sync {}", self.tmp_path.display()));
        file.sync_all()
            .map_err(|e| Error::io(self.path.display(), e))?;
        drop(file);
        let renamed = durable::rename(&self.tmp_path, &self.path);
        durable::set_live(&self.tmp_path, false);
        if renamed.is_err() {
            let _ = fs::remove_file(&self.tmp_path);
        }
        renamed?;
        durable::sync_dir(&durable::parent_of(&self.path))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.tmp.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
            durable::set_live(&self.tmp_path, false);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tmp.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_mut().expect("not committed").flush()
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(&path)?;
    f.write_all(bytes)
        .map_err(|e| Error::io(path.as_ref().display(), e))?;
    f.commit()
}

/// A tool's main output: stdout (`-` or no `-o`) or an atomically written file.
pub enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(AtomicFile),
}

impl Output {
    /// `None` or `Some("-")` is stdout.
    pub fn create(path: Option<&str>) -> Result<Self> {
        match path {
            None | Some("-") => Ok(Output::Stdout(BufWriter::with_capacity(
                1 << 20,
                io::stdout(),
            ))),
            Some(p) => Ok(Output::File(AtomicFile::create(p)?)),
        }
    }

    /// The name used in error messages.
    pub fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "<stdout>".to_string(),
            Output::File(f) => f.path().display().to_string(),
        }
    }

    /// Writes, naming the output on failure (a closed pipe shows up as a broken-pipe error).
    pub fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_all(bytes).map_err(|e| Error::io(self.name(), e))
    }

    /// Flushes stdout or commits the file.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().map_err(|e| Error::io("<stdout>", e)),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

/// Creates a directory (and parents), naming it on failure.
pub fn create_dir_all(dir: impl AsRef<Path>) -> Result<()> {
    fs::create_dir_all(dir.as_ref()).map_err(|e| Error::io(dir.as_ref().display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
    }

    #[test]
    fn dropped_atomic_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_atomic_replaces_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
