//! What triggers a reload besides an explicit request: a change to a file
//! the `rule_files` patterns match (notify, on the patterns' directories)
//! and SIGHUP.
//!
//! File events are coalesced: a burst (an editor's write, rename and
//! chmod) becomes one reload request once the directories have been quiet
//! for [`DEBOUNCE`], and the manager then reloads only if the matched
//! files' paths or contents actually changed. Reads (our own included)
//! are not changes.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Cause, ReloadRequest};

/// How long the rule directories must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// The directories to watch for `patterns`: the fixed part of each
/// pattern, recursively when a directory component holds a wildcard.
pub fn watch_dirs(patterns: &[String]) -> Vec<(PathBuf, RecursiveMode)> {
    let mut out: Vec<(PathBuf, RecursiveMode)> = Vec::new();
    for p in patterns {
        let comps: Vec<Component<'_>> = Path::new(p).components().collect();
        let mut base = PathBuf::new();
        let mut mode = RecursiveMode::NonRecursive;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let wild = c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
            if wild {
                if !last {
                    mode = RecursiveMode::Recursive;
                }
                break;
            }
            if last {
                break;
            }
            base.push(c);
        }
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        match out.iter_mut().find(|(b, _)| *b == base) {
            Some(entry) => {
                if mode == RecursiveMode::Recursive {
                    entry.1 = RecursiveMode::Recursive;
                }
            }
            None => out.push((base, mode)),
        }
    }
    out
}

/// Starts watching; the returned watcher stops when dropped.
pub(super) fn watch(
    patterns: &[String],
    reload: mpsc::Sender<ReloadRequest>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    // Capacity 1: one pending "something changed" is all the debouncer
    // needs to know.
    let (tx, rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Any change in a watched directory counts, not only to paths the
        // patterns match: a Kubernetes ConfigMap swaps a `..data` symlink
        // and never touches the matched names. The manager compares
        // contents, so unrelated changes cost a read, not a reload.
        let relevant = match res {
            Ok(ev) => !matches!(ev.kind, EventKind::Access(_)),
            // Lost events (queue overflow): check the files.
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    })?;
    for (dir, mode) in watch_dirs(patterns) {
        if let Err(e) = watcher.watch(&dir, mode) {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot watch a rule directory; changes there need SIGHUP or /-/reload"
            );
        }
    }
    tokio::spawn(debounce(rx, reload));
    Ok(watcher)
}

async fn debounce(mut rx: mpsc::Receiver<()>, reload: mpsc::Sender<ReloadRequest>) {
    while rx.recv().await.is_some() {
        // Quiet period: restart the wait while events keep coming.
        loop {
            match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let req = ReloadRequest {
            cause: Cause::FileChange,
            reply: None,
        };
        // Full: a reload is already queued and will see this change.
        if let Err(mpsc::error::TrySendError::Closed(_)) = reload.try_send(req) {
            return;
        }
    }
}

/// Sends a reload request on every SIGHUP until `shutdown`.
pub(super) fn on_sighup(reload: mpsc::Sender<ReloadRequest>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sig = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; rules reload on file change and /-/reload only");
                return;
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = sig.recv() => {
                        if got.is_none() {
                            return;
                        }
                        tracing::info!("SIGHUP received: reloading rules");
                        let req = ReloadRequest { cause: Cause::Signal, reply: None };
                        if reload.send(req).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (reload, shutdown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_follow_the_fixed_part_of_each_pattern() {
        let got = watch_dirs(&[
            "/etc/tocsin/rules/*.yaml".into(),
            "/etc/tocsin/rules/extra.yml".into(),
            "/srv/*/rules/*.yaml".into(),
            "/opt/r/**/*.yml".into(),
        ]);
        assert_eq!(
            got,
            vec![
                (
                    PathBuf::from("/etc/tocsin/rules"),
                    RecursiveMode::NonRecursive
                ),
                (PathBuf::from("/srv"), RecursiveMode::Recursive),
                (PathBuf::from("/opt/r"), RecursiveMode::Recursive),
            ]
        );
    }
}
