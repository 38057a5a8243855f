//! Discovery: which files the inputs' globs name now (`scan`), and a
//! notify watcher on the directories the globs start from that only raises
//! a "look again" flag. Scans are the truth; events only make them come
//! sooner, so a lost event or a watcher that could not start (no inotify
//! instances left, a directory that does not exist yet) costs latency, not
//! lines: the tailer falls back to scanning on its reconcile interval.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::config::LogInput;

/// A regular file named by an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub input: usize,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

/// What a scan found, and what it could not read.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<Found>,
    /// Paths or patterns that failed, with the reason (unreadable
    /// directories, stat errors); the caller logs and counts them.
    pub errors: Vec<(String, String)>,
}

/// Lists the files of every input. A file named by two inputs (or by two
/// paths, as hard links) belongs to the first.
pub fn scan<'a>(inputs: impl IntoIterator<Item = &'a LogInput>) -> Scan {
    let mut scan = Scan::default();
    let mut seen = HashSet::new();
    for (index, input) in inputs.into_iter().enumerate() {
        for pattern in &input.include {
            let paths = match glob::glob(pattern) {
                Ok(p) => p,
                Err(e) => {
                    scan.errors.push((pattern.clone(), e.to_string()));
                    continue;
                }
            };
            for entry in paths {
                let path = match entry {
                    Ok(p) => p,
                    Err(e) => {
                        scan.errors
                            .push((e.path().display().to_string(), e.error().to_string()));
                        continue;
                    }
                };
                if input.excludes(&path) {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    // Gone between listing and stat: the next scan settles it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        scan.errors
                            .push((path.display().to_string(), e.to_string()));
                        continue;
                    }
                };
                if !meta.is_file() || !seen.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                scan.files.push(Found {
                    path,
                    input: index,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.len(),
                });
            }
        }
    }
    scan
}

/// The directory a glob's matches live under: its longest prefix without
/// glob characters; recursive when the rest has more than one component
/// or a `**`.
pub fn watch_root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let mut root = PathBuf::new();
    let mut components = Path::new(pattern).components().peekable();
    while let Some(c) = components.next() {
        let text = c.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) || components.peek().is_none() {
            let rest: Vec<_> = std::iter::once(c).chain(components).collect();
            let recursive = rest.len() > 1 || text.contains("**");
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            return (root, mode);
        }
        root.push(c);
    }
    (root, RecursiveMode::NonRecursive)
}

/// Does the event change which files exist under which names? Writes to a
/// followed file do not (polling reads them), and a busy log must not turn
/// every poll into a rescan. Errors do: after an overflow the safe thing is
/// to rescan.
fn names_changed(event: &notify::Result<notify::Event>) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    match event {
        Ok(e) => matches!(
            e.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Any
                | EventKind::Other
        ),
        Err(_) => true,
    }
}

/// A notify watcher that sets a flag on any event under the inputs'
/// directories.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
    dirty: Arc<AtomicBool>,
    /// Directories that could not be watched, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

impl DirWatcher {
    /// Starts watching; `Err` when notify cannot start at all (the caller
    /// then polls).
    pub fn start(inputs: &[LogInput]) -> Result<DirWatcher, notify::Error> {
        let dirty = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&dirty);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if names_changed(&event) {
                    flag.store(true, Ordering::Release);
                }
            })?;
        let mut failed = Vec::new();
        let mut roots = HashSet::new();
        for input in inputs {
            for pattern in &input.include {
                let (root, mode) = watch_root(pattern);
                if !roots.insert(root.clone()) {
                    continue;
                }
                if let Err(e) = watcher.watch(&root, mode) {
                    failed.push((root, e.to_string()));
                }
            }
        }
        Ok(DirWatcher {
            _watcher: watcher,
            dirty,
            failed,
        })
    }

    /// Was there an event since the last call?
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sources::logtail::config::{LogInputConfig, validate_inputs};

    fn input(include: Vec<String>, exclude: Vec<String>) -> Vec<LogInput> {
        let yaml = serde_json::json!([{"include": include, "exclude": exclude}]).to_string();
        let configs: Vec<LogInputConfig> = serde_json::from_str(&yaml).unwrap();
        validate_inputs("logs", &configs).unwrap()
    }

    #[test]
    fn globs_excludes_and_first_input_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for name in ["a.log", "a.log.1", "b.log", "c.gz"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.log")).unwrap();
        let mut inputs = input(vec![format!("{d}/*.log*")], vec![format!("{d}/*.1")]);
        inputs.extend(input(vec![format!("{d}/*")], vec![]));
        inputs[1].name = "all".into();
        let scan = scan(&inputs);
        let mut got: Vec<(String, usize)> = scan
            .files
            .iter()
            .map(|f| {
                (
                    f.path.file_name().unwrap().to_string_lossy().into_owned(),
                    f.input,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a.log".into(), 0),
                ("a.log.1".into(), 1),
                ("b.log".into(), 0),
                ("c.gz".into(), 1)
            ]
        );
    }

    #[test]
    fn watch_roots() {
        assert_eq!(
            watch_root("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            watch_root("/var/log/**/x.log"),
            (PathBuf::from("/var/log"), RecursiveMode::Recursive)
        );
        assert_eq!(
            watch_root("/var/log/syslog"),
            (PathBuf::from("/var/log"), RecursiveMode::NonRecursive)
        );
    }

    #[test]
    fn watcher_flags_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = input(vec![format!("{}/*.log", dir.path().display())], vec![]);
        let watcher = DirWatcher::start(&inputs).unwrap();
        assert!(watcher.failed.is_empty(), "{:?}", watcher.failed);
        assert!(
            watcher.take_dirty(),
            "a fresh watcher asks for a first scan"
        );
        assert!(!watcher.take_dirty());
        let path = dir.path().join("new.log");
        std::fs::write(&path, "x\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watcher.take_dirty() {
            assert!(Instant::now() < deadline, "no event within 10s");
            std::thread::yield_now();
        }
        // Renames count too.
        std::fs::rename(&path, dir.path().join("new.log.1")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watcher.take_dirty() {
            assert!(Instant::now() < deadline, "no rename event within 10s");
            std::thread::yield_now();
        }
    }

    #[test]
    fn only_name_changes_ask_for_a_rescan() {
        use notify::event::{CreateKind, DataChange, EventKind, ModifyKind, RenameMode};
        let event = |kind| Ok(notify::Event::new(kind));
        assert!(names_changed(&event(EventKind::Create(CreateKind::File))));
        assert!(names_changed(&event(EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        )))));
        assert!(!names_changed(&event(EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        )))));
        assert!(names_changed(&Err(notify::Error::generic("overflow"))));
    }

    #[test]
    fn missing_directories_are_reported_not_fatal() {
        let inputs = input(vec!["/nonexistent-tocsin-dir/*.log".into()], vec![]);
        let watcher = DirWatcher::start(&inputs).unwrap();
        assert_eq!(watcher.failed.len(), 1);
        assert!(scan(&inputs).files.is_empty());
    }
}
