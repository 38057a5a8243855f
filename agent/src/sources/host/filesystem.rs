//! Filesystem space and inodes per mount, from `/proc/self/mounts` and
//! `statvfs(3)`.
//!
//! Which mounts: as the hostmetrics receiver (through gopsutil's
//! `Partitions(all=false)`), filesystem types the kernel marks `nodev` in
//! `/proc/filesystems` are virtual and left out (proc, sysfs, tmpfs,
//! devtmpfs, cgroup2, overlay, …), except zfs, which is `nodev` but holds
//! data; `include_virtual_filesystems` or naming a type in
//! `include_fs_types` brings them back. Then the configured type and mount
//! point lists apply. A mount point mounted over is reported once, for the
//! mount on top, which is the one `statvfs` sees.
//!
//! Figures, as gopsutil computes them: `used` = blocks − free blocks,
//! `free` = blocks available to unprivileged users, `reserved` = the
//! difference (root's reserve), so the three sum to the size;
//! `system.filesystem.utilization` = used / (used + free), what `df`
//! prints. Inodes: `used` and `free`.
//!
//! Cost: the mount table is parsed and filtered only when its bytes
//! change; a steady collection is one read of the table plus one
//! `statvfs` per reported mount.
//!
//! Hung mounts: `statvfs` on a dead NFS server blocks in the kernel for
//! as long as the server is gone. It runs on one worker thread; when it
//! does not answer within 5 seconds, the mount is reported as hung, the
//! thread is left to its fate and the mount is skipped until that thread
//! returns, when it is read again. At most 8 threads may be stuck at once
//! (bounded memory); then filesystems are skipped until one returns.

use std::io;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::config::FilesystemFilter;
use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, Interner, MAX_DEVICES, ScrapeError, parse_error, read_proc};

pub(crate) const FILESYSTEM_USAGE: Descriptor = Descriptor {
    name: "system.filesystem.usage",
    description: "Filesystem bytes used.",
    unit: "By",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const FILESYSTEM_INODES_USAGE: Descriptor = Descriptor {
    name: "system.filesystem.inodes.usage",
    description: "FileSystem inodes used.",
    unit: "{inodes}",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const FILESYSTEM_UTILIZATION: Descriptor = Descriptor {
    name: "system.filesystem.utilization",
    description: "Fraction of filesystem bytes used.",
    unit: "1",
    kind: MetricKind::Gauge,
};

const MOUNTS: &str = "/proc/self/mounts";
const FILESYSTEMS: &str = "/proc/filesystems";

/// A mount the scraper reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) device: Arc<str>,
    pub(crate) mount_point: Arc<str>,
    pub(crate) fs_type: Arc<str>,
    pub(crate) mode: &'static str,
}

/// Space and inode figures of one filesystem, from `statvfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Space {
    pub(crate) used: u64,
    pub(crate) free: u64,
    pub(crate) reserved: u64,
    pub(crate) inodes_used: u64,
    pub(crate) inodes_free: u64,
}

impl Space {
    pub(crate) fn from_blocks(
        fragment_size: u64,
        blocks: u64,
        blocks_free: u64,
        blocks_available: u64,
        files: u64,
        files_free: u64,
    ) -> Self {
        let total = blocks.saturating_mul(fragment_size);
        let blocks_free = blocks_free.min(blocks);
        let free_all = blocks_free.saturating_mul(fragment_size);
        let free = blocks_available
            .min(blocks_free)
            .saturating_mul(fragment_size);
        Space {
            used: total - free_all,
            free,
            reserved: free_all - free,
            inodes_used: files.saturating_sub(files_free),
            inodes_free: files_free.min(files),
        }
    }

    /// `df`'s use%: reserved blocks count as neither used nor usable.
    pub(crate) fn utilization(&self) -> Option<f64> {
        let usable = self.used.checked_add(self.free)?;
        (usable > 0).then(|| self.used as f64 / usable as f64)
    }
}

/// How long one `statvfs` may take before its mount is declared hung.
/// node_exporter's default; a healthy but loaded NFS server answers well
/// within it.
const STATVFS_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many threads may be stuck in `statvfs` on hung mounts;
/// past that, filesystems are not read until one returns.
const MAX_HUNG: usize = 8;

type StatFn = fn(&str) -> io::Result<Space>;

fn statvfs(mount_point: &str) -> io::Result<Space> {
    let st = rustix::fs::statvfs(mount_point)?;
    let fragment = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok(Space::from_blocks(
        fragment,
        st.f_blocks,
        st.f_bfree,
        st.f_bavail,
        st.f_files,
        st.f_ffree,
    ))
}

/// A thread that runs `statvfs` for the collector, so a hung network
/// mount blocks that thread, not the agent's collection.
struct Worker {
    requests: mpsc::Sender<Arc<str>>,
    replies: mpsc::Receiver<io::Result<Space>>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn spawn(stat: StatFn) -> io::Result<Worker> {
        let (requests, request_rx) = mpsc::channel::<Arc<str>>();
        let (reply_tx, replies) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("tocsin-statvfs".to_owned())
            .stack_size(64 << 10)
            .spawn(move || {
                for mount_point in request_rx {
                    // A send error means the collector gave up on this
                    // thread (its mount hung); then the thread ends.
                    if reply_tx.send(stat(&mount_point)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            requests,
            replies,
            handle,
        })
    }
}

/// A mount whose `statvfs` did not return in time, and the abandoned
/// thread still waiting in it. The mount is skipped until that thread
/// ends.
struct Hung {
    mount_point: Arc<str>,
    handle: JoinHandle<()>,
}

pub(crate) struct FilesystemState {
    /// The mount table bytes `mounts` was computed from.
    raw: Vec<u8>,
    mounts: Vec<Mount>,
    /// How many mounts passed the filters before the cap.
    seen: usize,
    worker: Option<Worker>,
    hung: Vec<Hung>,
    stat: StatFn,
    timeout: Duration,
}

impl Default for FilesystemState {
    fn default() -> Self {
        FilesystemState {
            raw: Vec::new(),
            mounts: Vec::new(),
            seen: 0,
            worker: None,
            hung: Vec::new(),
            stat: statvfs,
            timeout: STATVFS_TIMEOUT,
        }
    }
}

impl FilesystemState {
    pub(crate) fn record(
        &mut self,
        filter: &FilesystemFilter,
        buf: &mut Vec<u8>,
        names: &mut Interner,
        time: SystemTime,
        boot: SystemTime,
        c: &mut Collection,
    ) {
        if let Err(e) = read_proc("filesystem", MOUNTS, buf) {
            c.errors.push(e);
            return;
        }
        if *buf != self.raw {
            let text = String::from_utf8_lossy(buf);
            let entries: Vec<MountEntry> = parse_mounts(&text).collect();
            if entries.is_empty() {
                c.errors
                    .push(parse_error("filesystem", MOUNTS, "no mount entry"));
                return;
            }
            std::mem::swap(&mut self.raw, buf);
            let virtual_types = match read_proc("filesystem", FILESYSTEMS, buf) {
                Ok(()) => nodev_types(&String::from_utf8_lossy(buf)),
                Err(e) => {
                    // Without the kernel's list, fall back to reporting
                    // every mount the filters allow, and say so.
                    c.errors.push(e);
                    Vec::new()
                }
            };
            let (mounts, seen) = select_mounts(&entries, &virtual_types, filter, names);
            self.mounts = mounts;
            self.seen = seen;
        }
        if self.seen > self.mounts.len() {
            c.errors.push(ScrapeError::Truncated {
                scraper: "filesystem",
                what: "mounts",
                seen: self.seen,
                limit: self.mounts.len(),
            });
        }

        let mut usage = MetricBuilder::new(FILESYSTEM_USAGE, time, boot);
        let mut inodes = MetricBuilder::new(FILESYSTEM_INODES_USAGE, time, boot);
        let mut utilization = MetricBuilder::new(FILESYSTEM_UTILIZATION, time, boot);
        self.hung.retain(|h| !h.handle.is_finished());
        for i in 0..self.mounts.len() {
            let mount_point = Arc::clone(&self.mounts[i].mount_point);
            let space = match self.stat_mount(&mount_point) {
                Ok(space) => space,
                Err(e) => {
                    c.errors.push(e);
                    continue;
                }
            };
            let mount = &self.mounts[i];
            for (state, v) in [
                ("used", space.used),
                ("free", space.free),
                ("reserved", space.reserved),
            ] {
                usage.int(v, attributes(mount, Some(state)));
            }
            for (state, v) in [("used", space.inodes_used), ("free", space.inodes_free)] {
                inodes.int(v, attributes(mount, Some(state)));
            }
            if let Some(u) = space.utilization() {
                utilization.double(u, attributes(mount, None));
            }
        }
        usage.finish(&mut c.metrics);
        inodes.finish(&mut c.metrics);
        utilization.finish(&mut c.metrics);
    }
}

impl FilesystemState {
    /// `statvfs` through the worker thread, with the hung-mount rules.
    fn stat_mount(&mut self, mount_point: &Arc<str>) -> Result<Space, ScrapeError> {
        let hung = |count: usize| ScrapeError::Hung {
            mount_point: mount_point.to_string(),
            timeout: self.timeout,
            hung: count,
        };
        if self.hung.iter().any(|h| h.mount_point == *mount_point) {
            return Err(hung(self.hung.len()));
        }
        let worker = match &mut self.worker {
            Some(w) => w,
            None if self.hung.len() >= MAX_HUNG => return Err(hung(self.hung.len())),
            None => self
                .worker
                .insert(
                    Worker::spawn(self.stat).map_err(|source| ScrapeError::Statvfs {
                        mount_point: mount_point.to_string(),
                        source,
                    })?,
                ),
        };
        let reply = match worker.requests.send(Arc::clone(mount_point)) {
            Ok(()) => worker.replies.recv_timeout(self.timeout),
            Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
        };
        match reply {
            Ok(result) => result.map_err(|source| ScrapeError::Statvfs {
                mount_point: mount_point.to_string(),
                source,
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(w) = self.worker.take() {
                    self.hung.push(Hung {
                        mount_point: Arc::clone(mount_point),
                        handle: w.handle,
                    });
                }
                Err(hung(self.hung.len()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The thread died (it cannot panic, but be total): start a
                // new one next time.
                self.worker = None;
                Err(ScrapeError::Statvfs {
                    mount_point: mount_point.to_string(),
                    source: io::Error::other("statvfs thread ended"),
                })
            }
        }
    }
}

fn attributes(mount: &Mount, state: Option<&'static str>) -> Vec<Attribute> {
    let mut a = Vec::with_capacity(5);
    a.push(Attribute::shared("device", &mount.device));
    a.push(Attribute::fixed("mode", mount.mode));
    a.push(Attribute::shared("mountpoint", &mount.mount_point));
    a.push(Attribute::shared("type", &mount.fs_type));
    if let Some(state) = state {
        a.push(Attribute::fixed("state", state));
    }
    a
}

/// One line of the mount table, names unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) device: String,
    pub(crate) mount_point: String,
    pub(crate) fs_type: String,
    pub(crate) options: String,
}

/// Parses `/proc/self/mounts` (`device mountpoint type options 0 0`).
/// Not procfs' parser: it leaves the kernel's `\040` (space) escaped, so
/// a mount point with a space would fail `statvfs`, and it builds a map
/// of every mount's options, where only `rw`/`ro` matter here.
/// Malformed lines are skipped.
pub(crate) fn parse_mounts(text: &str) -> impl Iterator<Item = MountEntry> + '_ {
    text.lines().filter_map(|line| {
        let mut f = line.split(' ');
        Some(MountEntry {
            device: unescape_octal(f.next()?),
            mount_point: unescape_octal(f.next()?),
            fs_type: unescape_octal(f.next()?),
            options: f.next()?.to_owned(),
        })
    })
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and
/// backslash in mount table fields.
pub(crate) fn unescape_octal(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let v = (u32::from(b[i + 1] - b'0') << 6)
                | (u32::from(b[i + 2] - b'0') << 3)
                | u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The types `/proc/filesystems` marks `nodev`.
pub(crate) fn nodev_types(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("nodev"))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Applies the virtual-filesystem rule, the configured filters, the
/// over-mount rule and the cap; returns the mounts and how many passed
/// before the cap.
pub(crate) fn select_mounts(
    entries: &[MountEntry],
    virtual_types: &[String],
    filter: &FilesystemFilter,
    names: &mut Interner,
) -> (Vec<Mount>, usize) {
    let mut mounts: Vec<Mount> = Vec::new();
    let mut seen = 0;
    for e in entries {
        let fs_type = e.fs_type.as_str();
        let is_virtual = fs_type != "zfs" && virtual_types.iter().any(|t| t == fs_type);
        if is_virtual && !filter.include_virtual && !filter.names_type(fs_type) {
            continue;
        }
        if !filter.includes(fs_type, &e.mount_point) {
            continue;
        }
        let mode = if e.options.split(',').any(|o| o == "rw") {
            "rw"
        } else if e.options.split(',').any(|o| o == "ro") {
            "ro"
        } else {
            "unknown"
        };
        let mount = Mount {
            device: names.get(&e.device),
            mount_point: names.get(&e.mount_point),
            fs_type: names.get(fs_type),
            mode,
        };
        // A later mount on the same point hides the earlier one.
        if let Some(old) = mounts
            .iter_mut()
            .find(|m| m.mount_point == mount.mount_point)
        {
            *old = mount;
            continue;
        }
        seen += 1;
        if mounts.len() < MAX_DEVICES {
            mounts.push(mount);
        }
    }
    (mounts, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::host::config::HostMetricsConfig;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    const MOUNTS_TEXT: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=8000000k 0 0
/dev/nvme0n1p2 / ext4 rw,relatime,errors=remount-ro 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=1600000k,mode=755 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
/dev/nvme0n1p1 /boot/efi vfat rw,relatime,fmask=0077 0 0
/dev/loop0 /snap/core/1 squashfs ro,nodev,relatime 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime,lowerdir=/a 0 0
tank/data /tank zfs rw,xattr,noacl 0 0
/dev/sdb1 /mnt/with\\040space xfs ro,relatime 0 0
/dev/sdc1 /mnt/with\\040space xfs rw,relatime 0 0
";
    const FILESYSTEMS_TEXT: &str = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\
        nodev\tdevtmpfs\nnodev\tcgroup2\nnodev\toverlay\nnodev\tzfs\n\text4\n\tvfat\n\
        \tsquashfs\n\txfs\n";

    fn select(config: HostMetricsConfig) -> Vec<(String, String, String, &'static str)> {
        let settings = match config.validate() {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let entries: Vec<MountEntry> = parse_mounts(MOUNTS_TEXT).collect();
        assert_eq!(entries.len(), 12);
        let (mounts, seen) = select_mounts(
            &entries,
            &nodev_types(FILESYSTEMS_TEXT),
            &settings.filesystem,
            &mut Interner::default(),
        );
        assert_eq!(seen, mounts.len());
        mounts
            .into_iter()
            .map(|m| {
                (
                    m.device.to_string(),
                    m.mount_point.to_string(),
                    m.fs_type.to_string(),
                    m.mode,
                )
            })
            .collect()
    }

    #[test]
    fn default_selection_drops_virtual_filesystems_but_keeps_zfs() {
        let got = select(HostMetricsConfig::default());
        let points: Vec<&str> = got.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(
            points,
            vec!["/", "/boot/efi", "/snap/core/1", "/tank", "/mnt/with space"]
        );
        // The over-mount on /mnt/with space is the rw one on sdc1.
        assert_eq!(
            got[4],
            (
                "/dev/sdc1".into(),
                "/mnt/with space".into(),
                "xfs".into(),
                "rw"
            )
        );
        assert_eq!(got[2].3, "ro");
    }

    #[test]
    fn configured_lists_and_virtual_switch_apply() {
        let mut config = HostMetricsConfig::default();
        config.filesystem.include_fs_types = vec!["ext4".into(), "tmpfs".into()];
        let got = select(config);
        let points: Vec<&str> = got.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(points, vec!["/", "/run"], "tmpfs named, so reported");

        let mut config = HostMetricsConfig::default();
        config.filesystem.include_virtual_filesystems = true;
        config.filesystem.exclude_fs_types = vec!["proc".into(), "sysfs".into()];
        config.filesystem.exclude_mount_points = vec!["/var/lib/docker/*".into(), "/snap/*".into()];
        let got = select(config);
        let points: Vec<&str> = got.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(
            points,
            vec![
                "/dev",
                "/",
                "/run",
                "/sys/fs/cgroup",
                "/boot/efi",
                "/tank",
                "/mnt/with space"
            ]
        );
    }

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape_octal(r"/mnt/a\040b\011c\134d"), "/mnt/a b\tc\\d");
        assert_eq!(unescape_octal(r"/plain"), "/plain");
        // Not an escape: too short, or not octal digits.
        assert_eq!(unescape_octal(r"/x\04"), r"/x\04");
        assert_eq!(unescape_octal(r"/x\089"), r"/x\089");
        let e: Vec<_> = parse_mounts("short line\n/dev/sda1 /a\\040b ext4 rw 0 0\n").collect();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].mount_point, "/a b");
    }

    static RELEASE: AtomicBool = AtomicBool::new(false);

    /// Answers at once, except for `/hung`, which blocks until released
    /// (or 30 s pass, so a broken test cannot leave a thread forever).
    fn fake_stat(mount_point: &str) -> io::Result<Space> {
        if mount_point == "/hung" {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
        Ok(Space::from_blocks(4096, 100, 50, 40, 10, 5))
    }

    #[test]
    fn hung_mount_is_skipped_until_its_statvfs_returns() {
        let mut state = FilesystemState {
            stat: fake_stat,
            timeout: Duration::from_millis(100),
            ..FilesystemState::default()
        };
        let (a, hung, b): (Arc<str>, Arc<str>, Arc<str>) =
            ("/a".into(), "/hung".into(), "/b".into());
        assert!(state.stat_mount(&a).is_ok());
        let err = state.stat_mount(&hung);
        assert!(
            matches!(&err, Err(ScrapeError::Hung { hung: 1, .. })),
            "{err:?}"
        );
        assert!(state.worker.is_none(), "the stuck thread is abandoned");
        // Skipped without asking (no new thread), while other mounts work.
        assert!(matches!(
            state.stat_mount(&hung),
            Err(ScrapeError::Hung { .. })
        ));
        assert!(state.worker.is_none());
        assert_eq!(
            state.stat_mount(&b).ok(),
            Some(Space::from_blocks(4096, 100, 50, 40, 10, 5))
        );

        RELEASE.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !state.hung.iter().all(|h| h.handle.is_finished()) {
            assert!(Instant::now() < deadline, "released thread never ended");
            std::thread::yield_now();
        }
        state.hung.retain(|h| !h.handle.is_finished());
        assert!(
            state.stat_mount(&hung).is_ok(),
            "read again once it returned"
        );
    }

    #[test]
    fn space_states_sum_to_size_and_utilization_is_dfs() {
        // 1000 blocks of 4 KiB, 300 free, 250 available to users.
        let s = Space::from_blocks(4096, 1000, 300, 250, 100, 40);
        assert_eq!(s.used, 700 * 4096);
        assert_eq!(s.free, 250 * 4096);
        assert_eq!(s.reserved, 50 * 4096);
        assert_eq!(s.used + s.free + s.reserved, 1000 * 4096);
        assert_eq!((s.inodes_used, s.inodes_free), (60, 40));
        assert_eq!(s.utilization(), Some(700.0 / 950.0));
        // Inconsistent figures (free above size) clamp instead of wrapping.
        let s = Space::from_blocks(4096, 10, 20, 30, 0, 5);
        assert_eq!(
            (s.used, s.free, s.reserved, s.inodes_free),
            (0, 10 * 4096, 0, 0)
        );
        assert_eq!(Space::from_blocks(4096, 0, 0, 0, 0, 0).utilization(), None);
    }

    proptest::proptest! {
        /// For any statvfs figures, even inconsistent ones, the states are
        /// non-negative, add up to the size, and utilization is a fraction.
        #[test]
        fn space_invariants_hold_for_any_statvfs(
            fragment in 1u64..1 << 20,
            blocks in 0u64..1 << 40,
            free in 0u64..1 << 40,
            available in 0u64..1 << 40,
            files in 0u64..1 << 40,
            files_free in 0u64..1 << 40,
        ) {
            let s = Space::from_blocks(fragment, blocks, free, available, files, files_free);
            proptest::prop_assert_eq!(s.used + s.free + s.reserved, blocks * fragment);
            proptest::prop_assert!(s.inodes_used + s.inodes_free <= files.max(files_free));
            if let Some(u) = s.utilization() {
                proptest::prop_assert!((0.0..=1.0).contains(&u));
            }
        }
    }
}
