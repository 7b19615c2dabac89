//! The one rule for every folder a wick tool writes: a folder is replaced only when it is
//! recognisably wick's own output of the same kind, and it appears complete or not at all.
//!
//! wick marks each folder it writes with a `.wick` file (JSON: the kind, the tool, and for a
//! folder written in one go the names it holds). A folder without the marker, with another
//! kind's marker, or holding names the marker does not list (a file the user put there) is
//! refused, as are targets no tool should ever replace: `/`, the home folder, the current
//! folder and the folders above it. A missing or empty folder is always fine.
//!
//! [`OutDir`] writes a new folder under a temporary sibling name, syncs it and swaps it in;
//! [`RunDir`] is a folder a long job (training) writes into over time, locked while in use.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::durable::{self, parent_of};
use crate::{write_atomic, Error, Result};

/// The marker's file name.
pub const MARKER: &str = ".wick";

/// What a folder holds, as its marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Token shards (`pack`).
    Shards,
    /// A training run's folder (`train`): weights, checkpoint/, best/, metrics.jsonl.
    Run,
    /// A checkpoint inside a run folder.
    Checkpoint,
    /// A Hugging Face model folder (`lora-merge`, a run's `best/`).
    Model,
    /// A PPO iteration's policy (`ppo-step`).
    Policy,
    /// A tokenizer folder (`tokenize train`).
    Tokenizer,
    /// MinHash signatures (`dedup signatures`).
    Signatures,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shards => "shards",
            Kind::Run => "run",
            Kind::Checkpoint => "checkpoint",
            Kind::Model => "model",
            Kind::Policy => "policy",
            Kind::Tokenizer => "tokenizer",
            Kind::Signatures => "signatures",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Shards => "a shard folder",
            Kind::Run => "a training run",
            Kind::Checkpoint => "a checkpoint",
            Kind::Model => "a model folder",
            Kind::Policy => "a PPO policy folder",
            Kind::Tokenizer => "a tokenizer folder",
            Kind::Signatures => "a signatures folder",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::Shards,
            Kind::Run,
            Kind::Checkpoint,
            Kind::Model,
            Kind::Policy,
            Kind::Tokenizer,
            Kind::Signatures,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// A folder's `.wick` marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub kind: Kind,
    pub tool: String,
    /// The names directly in the folder when it was written in one go; `None` for a folder
    /// that grows (a run).
    pub files: Option<Vec<String>>,
}

impl Marker {
    /// The marker of `dir`, `None` when it has none (or one wick cannot read).
    pub fn read(dir: &Path) -> Option<Marker> {
        let text = fs::read_to_string(dir.join(MARKER)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some(Marker {
            kind: Kind::from_name(v.get("kind")?.as_str()?)?,
            tool: v.get("tool")?.as_str()?.to_string(),
            files: v.get("files").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            }),
        })
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut v =
            json!({"wick": env!("CARGO_PKG_VERSION"), "kind": self.kind.name(), "tool": self.tool});
        if let Some(files) = &self.files {
            v["files"] = json!(files);
        }
        write_atomic(
            dir.join(MARKER),
            (serde_json::to_string_pretty(&v).expect("JSON") + "\n").as_bytes(),
        )
    }
}

/// `path` made absolute with symbolic links and `..` resolved, as far as it exists.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => abs,
    }
}

/// "WHAT: holds a shard folder (pack's), not a model folder".
fn other_kind(what: &str, found: &Marker, kind: Kind) -> String {
    format!(
        "{what}: holds {} ({}'s), not {}",
        found.kind.describe(),
        found.tool,
        kind.describe()
    )
}

/// Marks a folder that grows over time (no list of files) as `kind`, unless it already is.
fn mark_growing(dest: &Path, kind: Kind, tool: &str) -> Result<()> {
    if Marker::read(dest).is_some_and(|m| m.kind == kind) {
        return Ok(());
    }
    Marker {
        kind,
        tool: tool.to_string(),
        files: None,
    }
    .write(dest)
}

/// Refuses the folders no tool should ever replace or fill: the root, the home folder (or a
/// folder above it), the current folder and the folders above it.
fn refuse_dangerous(dest: &Path, flag: &str) -> Result<()> {
    let real = resolve(dest);
    let why = if real.parent().is_none() {
        Some("the file system's root")
    } else if std::env::var_os("HOME")
        .map(|h| resolve(Path::new(&h)))
        .is_some_and(|h| h.starts_with(&real))
    {
        Some("your home folder or a folder above it")
    } else if std::env::current_dir()
        .map(|c| resolve(&c))
        .is_ok_and(|c| c.starts_with(&real))
    {
        Some("the current folder or a folder above it")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::msg(format!(
            "{flag} {}: is {why}; refusing to write a folder there (name a new folder)",
            dest.display()
        ))),
        None => Ok(()),
    }
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir.display(), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// What a killed wick process can leave in a folder besides its output: the lock file and
/// temporaries (`.NAME.tmp-PID-*`), which the next writer clears.
fn is_debris(name: &str) -> bool {
    name == LOCK
        || name.starts_with('.')
            && ["tmp", "old"].iter().any(|tag| {
                name.rsplit_once(&format!(".{tag}-"))
                    .is_some_and(|(_, rest)| {
                        rest.split_once('-')
                            .is_some_and(|(pid, _)| pid.parse::<u32>().is_ok())
                    })
            })
}

/// The folder's entries less [`is_debris`].
fn contents(dir: &Path) -> Result<Vec<String>> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|n| !is_debris(n))
        .collect())
}

/// Checks that `dest` may become (or be replaced by) a folder of `kind`:
/// missing, empty, or wick's own `kind` holding nothing but what wick wrote there. `flag` is
/// the option that named it, for the message.
pub fn check_replaceable(dest: &Path, kind: Kind, flag: &str) -> Result<()> {
    refuse_dangerous(dest, flag)?;
    let Ok(meta) = fs::metadata(dest) else {
        return Ok(());
    };
    let d = dest.display();
    if !meta.is_dir() {
        return Err(Error::msg(format!(
            "{flag} {d}: exists and is not a folder; refusing to replace it with {}",
            kind.describe()
        )));
    }
    let names = contents(dest)?;
    if names.is_empty() {
        return Ok(());
    }
    let Some(marker) = Marker::read(dest) else {
        return Err(Error::msg(format!(
            "{flag} {d}: exists and was not written by wick (no {MARKER} marker); refusing to replace it: remove it or choose another folder"
        )));
    };
    if marker.kind != kind {
        return Err(Error::msg(format!(
            "{}; refusing to replace it",
            other_kind(&format!("{flag} {d}"), &marker, kind)
        )));
    }
    if let Some(files) = &marker.files {
        if let Some(foreign) = names.iter().find(|n| *n != MARKER && !files.contains(n)) {
            return Err(Error::msg(format!(
                "{flag} {d}: holds {foreign}, which {} did not write; refusing to replace the folder: move it out or choose another folder",
                marker.tool
            )));
        }
    }
    Ok(())
}

/// A folder written whole under a temporary sibling name and swapped in by
/// [`OutDir::commit`]; dropped uncommitted, the temporary folder is removed.
pub struct OutDir {
    dest: PathBuf,
    staging: PathBuf,
    kind: Kind,
    tool: String,
    done: bool,
}

impl OutDir {
    /// Checks `dest` (see [`check_replaceable`]), clears what dead runs left beside it and
    /// starts the temporary folder.
    pub fn create(dest: &Path, kind: Kind, tool: &str, flag: &str) -> Result<OutDir> {
        check_replaceable(dest, kind, flag)?;
        let parent = parent_of(dest);
        crate::create_dir_all(&parent)?;
        // Write to the folder a link names, not over the link.
        let dest = match fs::symlink_metadata(dest) {
            Ok(m) if m.file_type().is_symlink() => resolve(dest),
            _ => dest.to_path_buf(),
        };
        durable::clean_stale(&dest)?;
        let staging = durable::temp_sibling(&dest, "tmp")?;
        crate::fault::point(format_args!("mkdir {}", staging.display()));
        fs::create_dir(&staging).map_err(|e| Error::io(parent.display(), e))?;
        durable::set_live(&staging, true);
        Ok(OutDir {
            dest,
            staging,
            kind,
            tool: tool.to_string(),
            done: false,
        })
    }

    /// The folder to write into.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Where it will appear.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Marks, syncs and swaps the folder into place, replacing what was there (checked
    /// again: it may have changed while the tool worked).
    pub fn commit(mut self) -> Result<()> {
        check_replaceable(&self.dest, self.kind, "output")?;
        let files: Vec<String> = entries(&self.staging)?
            .into_iter()
            .filter(|n| n != MARKER)
            .collect();
        Marker {
            kind: self.kind,
            tool: self.tool.clone(),
            files: Some(files),
        }
        .write(&self.staging)?;
        durable::sync_tree(&self.staging)?;
        durable::replace_dir(&self.staging, &self.dest)?;
        self.done = true;
        durable::set_live(&self.staging, false);
        Ok(())
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.staging);
            durable::set_live(&self.staging, false);
        }
    }
}

/// A folder that a long job fills over time (a training run), marked as `kind` and locked
/// against a second process while this value lives.
pub struct RunDir {
    path: PathBuf,
    _lock: fs::File,
}

/// The lock file inside a run folder: it holds the pid and tool of the process using it.
pub const LOCK: &str = ".lock";

impl RunDir {
    /// Checks that `dest` can hold a new job: missing, empty, or a folder of the same kind
    /// (the caller decides whether what is in it may be overwritten).
    pub fn check_new(dest: &Path, kind: Kind, flag: &str) -> Result<()> {
        refuse_dangerous(dest, flag)?;
        let d = dest.display();
        match fs::metadata(dest) {
            Ok(m) if !m.is_dir() => Err(Error::msg(format!(
                "{flag} {d}: exists and is not a folder"
            ))),
            Ok(_) if !contents(dest)?.is_empty() => match Marker::read(dest) {
                Some(m) if m.kind == kind => Ok(()),
                Some(m) => Err(Error::msg(format!(
                    "{}; refusing to write into it",
                    other_kind(&format!("{flag} {d}"), &m, kind)
                ))),
                None => Err(Error::msg(format!(
                    "{flag} {d}: exists and was not written by wick (no {MARKER} marker); refusing to write into it: choose a new folder"
                ))),
            },
            _ => Ok(()),
        }
    }

    /// Opens `dest` for a new job (see [`RunDir::check_new`]), creating and marking it.
    pub fn create(dest: &Path, kind: Kind, tool: &str, flag: &str) -> Result<RunDir> {
        RunDir::check_new(dest, kind, flag)?;
        crate::create_dir_all(dest)?;
        let run = RunDir::lock(dest, tool)?;
        mark_growing(dest, kind, tool)?;
        Ok(run)
    }

    /// Opens an existing folder of `kind` to continue its job. A folder without a marker
    /// is accepted when `legacy` says it looks like one (written before markers existed),
    /// and gets one.
    pub fn resume(dest: &Path, kind: Kind, tool: &str, legacy: bool) -> Result<RunDir> {
        let d = dest.display();
        if !dest.is_dir() {
            return Err(Error::msg(format!("{d}: no such folder to resume")));
        }
        match Marker::read(dest) {
            Some(m) if m.kind == kind => {}
            Some(m) => return Err(Error::msg(other_kind(&d.to_string(), &m, kind))),
            None if legacy => {}
            None => {
                return Err(Error::msg(format!(
                    "{d}: not {} written by wick (no {MARKER} marker)",
                    kind.describe()
                )))
            }
        }
        let run = RunDir::lock(dest, tool)?;
        mark_growing(dest, kind, tool)?;
        Ok(run)
    }

    fn lock(dir: &Path, tool: &str) -> Result<RunDir> {
        let path = dir.join(LOCK);
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a file descriptor this function owns.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let mut who = String::new();
                let _ = f.read_to_string(&mut who);
                let who = who.trim();
                return Err(Error::msg(format!(
                    "{}: in use by {} (see {}); two processes in one run folder would mix their metrics and checkpoints: wait for it to finish or stop it",
                    dir.display(),
                    if who.is_empty() { "another process" } else { who },
                    path.display()
                )));
            }
        }
        f.set_len(0).map_err(|e| Error::io(path.display(), e))?;
        f.rewind().map_err(|e| Error::io(path.display(), e))?;
        writeln!(f, "{tool} (pid {})", std::process::id())
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(RunDir {
            path: dir.to_path_buf(),
            _lock: f,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens `dest` as a folder that several processes may add files to at once (the map stage
/// of `dedup signatures`): checked as [`RunDir::check_new`], created and marked, not locked.
pub fn open_shared_dir(dest: &Path, kind: Kind, tool: &str, flag: &str) -> Result<()> {
    RunDir::check_new(dest, kind, flag)?;
    crate::create_dir_all(dest)?;
    mark_growing(dest, kind, tool)
}

/// Refuses two outputs of one command that are the same file, however they are spelled
/// (`-o x --rejected ./x`, a symbolic link): one would overwrite the other. `outputs` are
/// (flag, path) pairs; `-` (stdout) counts as one output too.
pub fn check_distinct_outputs(outputs: &[(&str, &Path)]) -> Result<()> {
    let key = |p: &Path| -> PathBuf {
        if p == Path::new("-") {
            PathBuf::from("-")
        } else {
            resolve(p)
        }
    };
    for (i, (fa, a)) in outputs.iter().enumerate() {
        for (fb, b) in &outputs[..i] {
            if key(a) == key(b) {
                return Err(Error::msg(format!(
                    "{fb} {} and {fa} {} name the same file; one would overwrite the other",
                    b.display(),
                    a.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        fs::write(p, s).unwrap();
    }

    #[test]
    fn a_folder_wick_did_not_write_is_refused_and_survives() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("mine");
        fs::create_dir(&dest).unwrap();
        write(&dest.join("manifest.json"), "{}");
        write(&dest.join("notes.txt"), "precious");
        let e = OutDir::create(&dest, Kind::Shards, "pack", "-o")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not written by wick"), "{e}");
        assert_eq!(
            fs::read_to_string(dest.join("notes.txt")).unwrap(),
            "precious"
        );
    }

    #[test]
    fn own_output_is_replaced_whole_but_not_with_foreign_files_in_it() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        for round in 0..2 {
            let o = OutDir::create(&dest, Kind::Shards, "pack", "-o").unwrap();
            write(&o.path().join(format!("f{round}")), "x");
            o.commit().unwrap();
        }
        assert_eq!(entries(&dest).unwrap(), [MARKER, "f1"]);
        // Another kind of wick output is not replaced either.
        let e = OutDir::create(&dest, Kind::Model, "lora-merge", "-o")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds a shard folder"), "{e}");
        write(&dest.join("user.txt"), "u");
        let e = OutDir::create(&dest, Kind::Shards, "pack", "-o")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds user.txt"), "{e}");
        // Nothing but the folder itself beside it: no temporary left behind.
        assert_eq!(entries(d.path()).unwrap(), ["out"]);
    }

    #[test]
    fn dropped_out_dir_leaves_nothing_and_the_old_folder_intact() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        let o = OutDir::create(&dest, Kind::Tokenizer, "tokenize", "-o").unwrap();
        write(&o.path().join("tokenizer.json"), "{}");
        o.commit().unwrap();
        {
            let o = OutDir::create(&dest, Kind::Tokenizer, "tokenize", "-o").unwrap();
            write(&o.path().join("tokenizer.json"), "new");
        }
        assert_eq!(entries(d.path()).unwrap(), ["out"]);
        assert_eq!(
            fs::read_to_string(dest.join("tokenizer.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn root_home_and_current_folder_are_refused() {
        for p in ["/", ".", ".."] {
            let e = check_replaceable(Path::new(p), Kind::Shards, "-o")
                .unwrap_err()
                .to_string();
            assert!(e.contains("refusing to write a folder there"), "{p}: {e}");
        }
        if let Some(home) = std::env::var_os("HOME") {
            assert!(check_replaceable(Path::new(&home), Kind::Run, "-o").is_err());
        }
    }

    #[test]
    fn same_output_twice_is_refused_however_spelled() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("x.jsonl");
        let dotted = d.path().join(".").join("x.jsonl");
        assert!(check_distinct_outputs(&[("-o", &a), ("--rejected", &dotted)]).is_err());
        write(&a, "");
        let link = d.path().join("link.jsonl");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let e = check_distinct_outputs(&[("-o", &a), ("--removed", &link)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("name the same file"), "{e}");
        let b = d.path().join("y.jsonl");
        check_distinct_outputs(&[("-o", &a), ("--rejected", &b), ("x", Path::new("-"))]).unwrap();
    }

    #[test]
    fn a_run_folder_is_locked_while_in_use() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("run");
        let held = RunDir::create(&dest, Kind::Run, "train", "-o").unwrap();
        // flock locks belong to open files: a second open in this process conflicts too.
        let e = RunDir::resume(&dest, Kind::Run, "train", false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("in use by train (pid"), "{e}");
        drop(held);
        RunDir::resume(&dest, Kind::Run, "train", false).unwrap();
        // A Hugging Face folder is not a run folder.
        let hf = d.path().join("hf");
        fs::create_dir(&hf).unwrap();
        write(&hf.join("config.json"), "{}");
        let e = RunDir::create(&hf, Kind::Run, "train", "-o")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not written by wick"), "{e}");
    }
}
