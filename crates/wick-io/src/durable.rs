//! File-system changes that survive a crash or a power cut: data synced before the rename
//! that publishes it, the directory synced after, a folder replaced by one atomic exchange.
//! Every change is a [`fault::point`](crate::fault::point).
//!
//! Temporary siblings are named `.NAME.tmp-PID-RANDOM` (and `.NAME.old-PID-RANDOM` for a
//! folder being replaced), so the next writer of NAME can tell a dead run's leftovers from a
//! live run's work and remove them.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::fault;
use crate::{Error, Result};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(path.display(), e)
}

/// The directory a path lives in ("." for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::msg(format!("{}: not a file or folder name", path.display())))
}

/// Syncs a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let f = fs::File::open(dir).map_err(io_err(dir))?;
        f.sync_all().map_err(io_err(dir))?;
    }
    Ok(())
}

/// Syncs every file and directory under `root` (and `root` itself).
pub fn sync_tree(root: &Path) -> Result<()> {
    for entry in fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            let f = fs::File::open(&path).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
    }
    sync_dir(root)
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fault::point(format_args!(
        "rename {} -> {}",
        from.display(),
        to.display()
    ));
    fs::rename(from, to).map_err(io_err(to))
}

pub fn remove_file(path: &Path) -> Result<()> {
    fault::point(format_args!("unlink {}", path.display()));
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path.display(), e)),
        _ => Ok(()),
    }
}

pub fn remove_dir_all(path: &Path) -> Result<()> {
    fault::point(format_args!("remove {}", path.display()));
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path.display(), e)),
        _ => Ok(()),
    }
}

/// Swaps two paths in one step (Linux's `renameat2(RENAME_EXCHANGE)`). `Ok(false)` where the
/// system or file system cannot, and nothing changed.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(Error::msg);
        let (ca, cb) = (c(a)?, c(b)?);
        fault::point(format_args!("exchange {} <-> {}", a.display(), b.display()));
        // SAFETY: two valid NUL-terminated paths; the syscall reads them and nothing else.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(Error::io(b.display(), e)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Puts the finished, synced folder `staging` at `dest`, replacing what is there. A kill at
/// any moment leaves `dest` whole (old or new), except on systems without an atomic
/// exchange, where it can leave `dest` missing and the old copy in `.NAME.old-*`, which
/// [`clean_stale`] puts back.
pub fn replace_dir(staging: &Path, dest: &Path) -> Result<()> {
    let parent = parent_of(dest);
    if dest.symlink_metadata().is_ok() {
        if exchange(staging, dest)? {
            sync_dir(&parent)?;
            return remove_dir_all(staging);
        }
        let old = temp_sibling(dest, "old")?;
        rename(dest, &old)?;
        rename(staging, dest)?;
        sync_dir(&parent)?;
        return remove_dir_all(&old);
    }
    rename(staging, dest)?;
    sync_dir(&parent)
}

/// Paths this process is writing under temporary names: never cleaned up as stale.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

pub(crate) fn set_live(path: &Path, live: bool) {
    let mut set = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let set = set.get_or_insert_with(HashSet::new);
    if live {
        set.insert(path.to_path_buf());
    } else {
        set.remove(path);
    }
}

fn is_live(path: &Path) -> bool {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|s| s.contains(path))
}

/// A fresh temporary name beside `dest`: `.NAME.TAG-PID-RANDOM`.
pub fn temp_sibling(dest: &Path, tag: &str) -> Result<PathBuf> {
    let name = file_name(dest)?;
    let nonce = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() & 0xffff_ffff
    };
    Ok(parent_of(dest).join(format!(".{name}.{tag}-{}-{nonce:08x}", std::process::id())))
}

fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes the temporary siblings of `dest` that runs which have since died left behind; a
/// dead run's `.NAME.old-*` (a folder it was replacing) goes back to `dest` if `dest` is
/// missing. Siblings of running processes are left alone.
pub fn clean_stale(dest: &Path) -> Result<()> {
    let name = file_name(dest)?;
    let parent = parent_of(dest);
    let Ok(entries) = fs::read_dir(&parent) else {
        return Ok(());
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry_name.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let Some((tag, rest)) = rest.split_once('-') else {
            continue;
        };
        if tag != "tmp" && tag != "old" {
            continue;
        }
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let path = entry.path();
        if (pid != me && process_alive(pid)) || is_live(&path) {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if tag == "old" && is_dir && dest.symlink_metadata().is_err() {
            rename(&path, dest)?;
        } else if is_dir {
            remove_dir_all(&path)?;
        } else {
            remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_dir_swaps_contents() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("a"), "old").unwrap();
        let staging = temp_sibling(&dest, "tmp").unwrap();
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("b"), "new").unwrap();
        replace_dir(&staging, &dest).unwrap();
        assert!(!dest.join("a").exists());
        assert_eq!(fs::read_to_string(dest.join("b")).unwrap(), "new");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_siblings_of_dead_runs_go_and_an_orphaned_old_copy_comes_back() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        // pid 0x7fffffff cannot exist (above pid_max); this process's own unregistered
        // siblings are leftovers of an earlier process that had the same pid.
        let dead = i32::MAX;
        let me = std::process::id();
        fs::write(d.path().join(format!(".out.tmp-{dead}-1")), "x").unwrap();
        fs::create_dir(d.path().join(format!(".out.tmp-{me}-2"))).unwrap();
        fs::create_dir(d.path().join(format!(".out.old-{dead}-3"))).unwrap();
        fs::write(d.path().join(format!(".out.old-{dead}-3/kept")), "k").unwrap();
        // Someone else's file that only looks similar, and a sibling of a live process.
        fs::write(d.path().join(".out.tmpfile"), "user").unwrap();
        let live = d.path().join(format!(".out.tmp-{me}-4"));
        fs::write(&live, "live").unwrap();
        set_live(&live, true);
        clean_stale(&dest).unwrap();
        set_live(&live, false);
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [&format!(".out.tmp-{me}-4"), ".out.tmpfile", "out"]);
        assert_eq!(fs::read_to_string(dest.join("kept")).unwrap(), "k");
    }
}
