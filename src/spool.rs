//! The spool: an append-only journal of ref updates under `$GIT_DIR/pushmirror/spool`.
//!
//! Every record is one line ending in a CRC-32 of the rest, so a reader can tell a complete record
//! from the torn tail a crash leaves behind without trusting the file length. Records carry a
//! sequence number; each mirror remembers the highest one it has confirmed (its cursor, kept in its
//! state file), which is all that is needed to know what is pending for whom. Appends and
//! compaction are serialised by `spool.lock`: compaction replaces the file by rename, and appenders
//! open the path only after taking the lock, so no append can land in a replaced file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::update::RefUpdate;

/// What a record asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A ref changed upstream (`old`, `new` as pushed; new all-zero for a deletion).
    Update {
        old: String,
        new: String,
        refname: String,
    },
    /// Sync now, without waiting for the minimum interval (debounce) or a retry's backoff:
    /// `pushmirror.sync`, `git-pushmirror sync`, a new mirror, `sweep`.
    /// `mirror` is a mirror name or `*` for all.
    Force { mirror: String },
    /// Keeps the sequence number alive when compaction empties the journal.
    Mark,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// When the first of the updates coalesced into this record was spooled (ms since epoch).
    pub first_ms: u64,
    /// When the last one was spooled.
    pub last_ms: u64,
    pub kind: Kind,
}

impl Record {
    pub fn refname(&self) -> Option<&str> {
        match &self.kind {
            Kind::Update { refname, .. } => Some(refname),
            _ => None,
        }
    }

    /// Whether this record is work for the named mirror.
    pub fn applies_to(&self, mirror: &str) -> bool {
        match &self.kind {
            Kind::Update { .. } => true,
            Kind::Force { mirror: m } => m == "*" || m == mirror,
            Kind::Mark => false,
        }
    }

    fn encode(&self) -> String {
        let body = match &self.kind {
            Kind::Update { old, new, refname } => {
                format!(
                    "v1 {} {} {} u {old} {new} {refname}",
                    self.seq, self.first_ms, self.last_ms
                )
            }
            Kind::Force { mirror } => {
                format!(
                    "v1 {} {} {} f - - {mirror}",
                    self.seq, self.first_ms, self.last_ms
                )
            }
            Kind::Mark => format!("v1 {} {} {} m - - -", self.seq, self.first_ms, self.last_ms),
        };
        let crc = crc32fast::hash(body.as_bytes());
        format!("{body} {crc:08x}\n")
    }

    /// Decodes one line (without its newline); `None` for anything that is not a whole record.
    fn decode(line: &[u8]) -> Option<Record> {
        let line = std::str::from_utf8(line).ok()?;
        let (body, crc) = line.rsplit_once(' ')?;
        if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes())
        {
            return None;
        }
        let f: Vec<&str> = body.splitn(8, ' ').collect();
        if f.len() != 8 || f[0] != "v1" {
            return None;
        }
        let (seq, first_ms, last_ms) = (f[1].parse().ok()?, f[2].parse().ok()?, f[3].parse().ok()?);
        // A sequence number no spool reaches (a record made by hand): numbering on from it
        // would overflow, so it is damage like any other bad record.
        if seq > crate::state::MAX_CURSOR {
            return None;
        }
        let kind = match f[4] {
            "u" => Kind::Update {
                old: f[5].into(),
                new: f[6].into(),
                refname: f[7].into(),
            },
            "f" => Kind::Force {
                mirror: f[7].into(),
            },
            "m" => Kind::Mark,
            _ => return None,
        };
        Some(Record {
            seq,
            first_ms,
            last_ms,
            kind,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{}", io_message(path, source))]
    Io { path: PathBuf, source: io::Error },
}

/// `path: error`, except for a directory where the journal or its lock file belongs (made or
/// moved there by hand), where the OS's bare "Is a directory" would not say what to do.
fn io_message(path: &Path, e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::EISDIR) {
        let what = if path.ends_with("spool.lock") {
            "lock file"
        } else {
            "spool file"
        };
        return format!(
            "{} is a directory, not git-pushmirror's {what}: move it away (a new {what} is made)",
            path.display()
        );
    }
    format!("{}: {e}", path.display())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A damaged stretch of the journal: what a reader skipped, so it can be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub len: usize,
}

/// The journal as read: valid records in file order, and what was skipped.
#[derive(Debug, Default)]
pub struct Contents {
    pub records: Vec<Record>,
    pub damage: Vec<Damage>,
}

impl Contents {
    pub fn last_seq(&self) -> u64 {
        self.records.iter().map(|r| r.seq).max().unwrap_or(0)
    }
}

/// The journal's newest sequence number was below a mirror's cursor: it was lost or truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewind {
    pub spool_last: u64,
    pub cursor: u64,
}

impl std::fmt::Display for Rewind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the spool ends at sequence number {} but a mirror has confirmed up to {}: it was lost or truncated; every mirror gets a full sync",
            self.spool_last, self.cursor
        )
    }
}

/// What compaction keeps: every record above `enabled` (the lowest cursor among the enabled
/// mirrors), and deletions above `all` (the lowest cursor among all mirrors, disabled ones
/// included). A deletion is the only evidence that a tag on a mirror came from upstream and
/// went away there; a mirror disabled meanwhile needs it when it is enabled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floors {
    pub enabled: u64,
    pub all: u64,
}

impl Floors {
    /// Both floors at `cursor` (one mirror, or all at the same place).
    #[cfg(test)]
    pub fn at(cursor: u64) -> Floors {
        Floors {
            enabled: cursor,
            all: cursor,
        }
    }

    pub fn keeps(&self, r: &Record) -> bool {
        match &r.kind {
            Kind::Mark => false,
            Kind::Update { new, .. } if crate::update::is_null(new) => {
                r.seq > self.enabled.min(self.all)
            }
            _ => r.seq > self.enabled,
        }
    }
}

/// What an append did besides appending.
#[derive(Debug, Default)]
pub struct Appended {
    pub damage: Option<Damage>,
    pub rewind: Option<Rewind>,
}

pub struct Spool {
    dir: PathBuf,
}

/// Holds `spool.lock`; dropping it releases the lock.
pub struct SpoolLock {
    file: File,
}

impl Drop for SpoolLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

impl Spool {
    /// `dir` is `$GIT_DIR/pushmirror`.
    pub fn new(dir: &Path) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("spool")
    }

    pub fn lock(&self) -> Result<SpoolLock, SpoolError> {
        let path = self.dir.join("spool.lock");
        let file = crate::paths::open_private(&path, false).map_err(io_err(&path))?;
        file.lock_exclusive().map_err(io_err(&path))?;
        Ok(SpoolLock { file })
    }

    /// Appends records built from `updates` and `forces` in one write and one fdatasync, under the
    /// lock the caller holds. Returns the damage found at the tail (a torn record a crash left),
    /// which is fenced off with a newline so the new records stay readable.
    pub fn append(
        &self,
        lock: &SpoolLock,
        updates: &[RefUpdate],
        forces: &[String],
        now_ms: u64,
    ) -> Result<Option<Damage>, SpoolError> {
        self.append_checked(lock, updates, forces, now_ms)
            .map(|a| a.damage)
    }

    /// `append`, also telling whether the journal had gone backwards (see `Rewind`).
    ///
    /// Sequence numbers never go backwards relative to a mirror's cursor: when the journal was
    /// lost or cut back (deleted, emptied, a torn tail truncated) while `state/*.json` kept
    /// their cursors, new records would otherwise get numbers at or below those cursors, count
    /// as confirmed and never be mirrored. So numbering resumes above the highest cursor, and a
    /// force record for every mirror is added: what the lost records said is unknown, so every
    /// mirror gets a full sync.
    pub fn append_checked(
        &self,
        lock: &SpoolLock,
        updates: &[RefUpdate],
        forces: &[String],
        now_ms: u64,
    ) -> Result<Appended, SpoolError> {
        self.append_above(lock, updates, forces, now_ms, 0)
    }

    /// `append_checked`, numbering above `known` as well: the highest cursor the caller read
    /// from the state files themselves (the flusher, `sync`). The `cursor-floor` cache cannot
    /// see a state file overwritten in place (restored with `cp`): when it says less than
    /// `known` it is stale, and is dropped so that the next push reads the state files again.
    pub fn append_above(
        &self,
        _lock: &SpoolLock,
        updates: &[RefUpdate],
        forces: &[String],
        now_ms: u64,
        known: u64,
    ) -> Result<Appended, SpoolError> {
        let path = self.path();
        let mut file = crate::paths::open_private(&path, true).map_err(io_err(&path))?;
        let (tail_seq, damage, needs_newline) = tail_state(&mut file).map_err(io_err(&path))?;
        // The highest cursor, from `cursor-floor` when it is valid (see floor.rs).
        let cached = crate::floor::max_cursor(&self.dir);
        if cached < known {
            crate::floor::forget(&self.dir);
        }
        let floor = cached.max(known);
        let rewind = (tail_seq < floor).then_some(Rewind {
            spool_last: tail_seq,
            cursor: floor,
        });
        let last_seq = tail_seq.max(floor);
        let forces: Vec<String> = forces
            .iter()
            .cloned()
            .chain(rewind.as_ref().map(|_| "*".to_string()))
            .collect();
        let mut buf = String::new();
        if needs_newline {
            buf.push('\n');
        }
        let kinds = updates
            .iter()
            .map(|u| Kind::Update {
                old: u.old.clone(),
                new: u.new.clone(),
                refname: u.refname.clone(),
            })
            .chain(forces.into_iter().map(|mirror| Kind::Force { mirror }));
        for (seq, kind) in (last_seq + 1..).zip(kinds) {
            let record = Record {
                seq,
                first_ms: now_ms,
                last_ms: now_ms,
                kind,
            };
            buf.push_str(&record.encode());
        }
        let done = Appended { damage, rewind };
        if buf.is_empty() {
            return Ok(done);
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        file.write_all(buf.as_bytes()).map_err(io_err(&path))?;
        file.sync_data().map_err(io_err(&path))?;
        Ok(done)
    }

    /// Reads every record. Callers hold the lock so that an append in progress is never
    /// mistaken for damage.
    pub fn read(&self, _lock: &SpoolLock) -> Result<Contents, SpoolError> {
        let path = self.path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err(&path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(io_err(&path)(e)),
        }
        Ok(parse(&bytes))
    }

    /// Rewrites the journal keeping only what some mirror still needs, one record per ref (the
    /// newest value wins; its `first_ms` is the oldest of the merged ones so max_delay still
    /// counts from the first pending update). See `Floors` for what is kept. A Mark record keeps
    /// the sequence number from going backwards.
    pub fn compact(
        &self,
        _lock: &SpoolLock,
        contents: &Contents,
        floors: Floors,
    ) -> Result<(), SpoolError> {
        let last_seq = contents.last_seq();
        let mut by_key: BTreeMap<String, Record> = BTreeMap::new();
        for r in contents.records.iter().filter(|r| floors.keeps(r)) {
            let key = match &r.kind {
                Kind::Update { refname, .. } => format!("u {refname}"),
                Kind::Force { mirror } => format!("f {mirror}"),
                Kind::Mark => continue,
            };
            by_key
                .entry(key)
                .and_modify(|e| {
                    let first = e.first_ms.min(r.first_ms);
                    if r.seq > e.seq {
                        *e = r.clone();
                    }
                    e.first_ms = first;
                })
                .or_insert_with(|| r.clone());
        }
        let mut kept: Vec<Record> = by_key.into_values().collect();
        kept.sort_by_key(|r| r.seq);
        if kept.last().map(|r| r.seq) != Some(last_seq) && last_seq > 0 {
            let now = crate::time::now_ms();
            kept.push(Record {
                seq: last_seq,
                first_ms: now,
                last_ms: now,
                kind: Kind::Mark,
            });
        }
        let body: String = kept.iter().map(Record::encode).collect();
        crate::paths::refuse_symlink(&self.path()).map_err(io_err(&self.path()))?;
        let mode = crate::paths::file_mode_in(&self.dir);
        crate::paths::write_atomic(&self.path(), body.as_bytes(), mode)
            .map_err(io_err(&self.path()))
    }
}

/// Finds the last sequence number cheaply: only the tail of the file is read, which keeps the
/// hook's cost flat in the size of the journal. The first window holds some 30 records (each
/// one is CRC-checked and decoded): a burst between two compactions grows the journal, and a
/// 64 KiB window cost every push of the burst the decoding of hundreds of records.
fn tail_state(file: &mut File) -> io::Result<(u64, Option<Damage>, bool)> {
    let len = file.metadata()?.len();
    let mut window = 4 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity((len - start) as usize);
        file.take(len - start).read_to_end(&mut bytes)?;
        let needs_newline = bytes.last().is_some_and(|b| *b != b'\n');
        // The first line of a window that does not start the file may be cut: skip it.
        let from = if start == 0 {
            0
        } else {
            bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |p| p + 1)
        };
        let parsed = parse(&bytes[from..]);
        let damage = parsed.damage.last().and_then(|d| {
            let end = from as u64 + d.offset + d.len as u64;
            let at_tail = end + 1 >= bytes.len() as u64;
            at_tail.then(|| Damage {
                offset: start + from as u64 + d.offset,
                len: d.len,
            })
        });
        if !parsed.records.is_empty() || start == 0 {
            return Ok((parsed.last_seq(), damage, needs_newline));
        }
        window *= 4;
    }
}

/// Splits into lines and keeps the valid records; anything else is damage.
pub fn parse(bytes: &[u8]) -> Contents {
    let mut out = Contents::default();
    let mut offset = 0usize;
    for chunk in bytes.split_inclusive(|b| *b == b'\n') {
        let complete = chunk.last() == Some(&b'\n');
        let line = if complete {
            &chunk[..chunk.len() - 1]
        } else {
            chunk
        };
        match Record::decode(line).filter(|_| complete) {
            Some(r) => out.records.push(r),
            None if line.is_empty() => {}
            None => out.damage.push(Damage {
                offset: offset as u64,
                len: line.len(),
            }),
        }
        offset += chunk.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn upd(r: &str, new: char) -> RefUpdate {
        RefUpdate {
            old: "0".repeat(40),
            new: new.to_string().repeat(40),
            refname: r.into(),
        }
    }

    #[test]
    fn append_read_roundtrip_and_seq_continues() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        s.append(
            &l,
            &[upd("refs/heads/a", '1'), upd("refs/heads/b", '2')],
            &[],
            5,
        )
        .unwrap();
        s.append(&l, &[upd("refs/heads/a", '3')], &["m1".into()], 6)
            .unwrap();
        let c = s.read(&l).unwrap();
        assert_eq!(
            c.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            c.records[3].kind,
            Kind::Force {
                mirror: "m1".into()
            }
        );
        assert!(c.damage.is_empty());
    }

    #[test]
    fn torn_tail_is_fenced_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        s.append(&l, &[upd("refs/heads/a", '1')], &[], 5).unwrap();
        let mut f = OpenOptions::new().append(true).open(s.path()).unwrap();
        f.write_all(b"v1 2 5 5 u 000").unwrap();
        let d = s.append(&l, &[upd("refs/heads/b", '2')], &[], 6).unwrap();
        assert!(d.is_some());
        let c = s.read(&l).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[1].seq, 2);
        assert_eq!(c.damage.len(), 1);
    }

    #[test]
    fn corrupt_middle_record_is_skipped_not_fatal() {
        let mut bytes = Record {
            seq: 1,
            first_ms: 1,
            last_ms: 1,
            kind: Kind::Mark,
        }
        .encode()
        .into_bytes();
        let mut bad = Record {
            seq: 2,
            first_ms: 1,
            last_ms: 1,
            kind: Kind::Mark,
        }
        .encode()
        .into_bytes();
        bad[3] = b'9';
        bytes.extend(bad);
        bytes.extend(
            Record {
                seq: 3,
                first_ms: 1,
                last_ms: 1,
                kind: Kind::Mark,
            }
            .encode()
            .into_bytes(),
        );
        bytes.extend(b"\0\0\xff\n");
        let c = parse(&bytes);
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.damage.len(), 2);
    }

    #[test]
    fn a_sequence_number_beyond_any_spool_is_damage_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let lock = spool.lock().unwrap();
        spool
            .append(&lock, &[upd("refs/heads/a", 'a')], &[], 1)
            .unwrap();
        let forged = Record {
            seq: u64::MAX,
            first_ms: 1,
            last_ms: 1,
            kind: Kind::Mark,
        }
        .encode();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(spool.path())
            .unwrap();
        std::io::Write::write_all(&mut f, forged.as_bytes()).unwrap();
        spool
            .append(&lock, &[upd("refs/heads/b", 'b')], &[], 2)
            .unwrap();
        let c = spool.read(&lock).unwrap();
        assert_eq!(c.damage.len(), 1);
        let seqs: Vec<u64> = c.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn numbering_resumes_above_the_highest_cursor_when_the_spool_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        for i in 0..5u64 {
            s.append(&l, &[upd("refs/heads/a", '1')], &[], i).unwrap();
        }
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/m.json"), br#"{"cursor": 5}"#).unwrap();
        std::fs::remove_file(s.path()).unwrap();
        let a = s
            .append_checked(&l, &[upd("refs/heads/a", '2')], &[], 9)
            .unwrap();
        assert_eq!(
            a.rewind,
            Some(Rewind {
                spool_last: 0,
                cursor: 5
            })
        );
        let c = s.read(&l).unwrap();
        assert_eq!(c.records[0].seq, 6);
        assert_eq!(c.records[1].kind, Kind::Force { mirror: "*".into() });
        // Once above the cursors, appends are plain again.
        let a = s.append_checked(&l, &[], &["m".into()], 10).unwrap();
        assert_eq!(a.rewind, None);
        assert_eq!(s.read(&l).unwrap().last_seq(), 8);
    }

    #[test]
    fn numbering_resumes_above_a_known_cursor_the_floor_cache_missed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        s.append(&l, &[upd("refs/heads/a", '1')], &[], 1).unwrap();
        // A cache that the state files no longer agree with (one written in place since).
        std::fs::write(dir.path().join(crate::floor::FILE), b"stale\n").unwrap();
        let a = s.append_above(&l, &[], &["m".into()], 2, 9).unwrap();
        assert_eq!(
            a.rewind,
            Some(Rewind {
                spool_last: 1,
                cursor: 9
            })
        );
        assert!(!dir.path().join(crate::floor::FILE).exists(), "cache kept");
        let c = s.read(&l).unwrap();
        let tail: Vec<(u64, &Kind)> = c.records[1..].iter().map(|r| (r.seq, &r.kind)).collect();
        assert_eq!(
            tail,
            vec![
                (10, &Kind::Force { mirror: "m".into() }),
                (11, &Kind::Force { mirror: "*".into() })
            ]
        );
        // Above it already: a plain append.
        let a = s.append_above(&l, &[], &["m".into()], 3, 9).unwrap();
        assert_eq!(a.rewind, None);
        assert_eq!(s.read(&l).unwrap().last_seq(), 12);
    }

    #[test]
    fn compaction_keeps_deletions_a_disabled_mirror_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        let del = RefUpdate {
            old: "1".repeat(40),
            new: "0".repeat(40),
            refname: "refs/tags/v1".into(),
        };
        s.append(&l, &[upd("refs/heads/a", '1')], &[], 1).unwrap();
        s.append(&l, &[del], &[], 2).unwrap();
        s.append(&l, &[upd("refs/heads/a", '2')], &[], 3).unwrap();
        let c = s.read(&l).unwrap();
        s.compact(&l, &c, Floors { enabled: 3, all: 0 }).unwrap();
        let kept = s.read(&l).unwrap();
        assert_eq!(kept.records.len(), 2, "{:?}", kept.records);
        assert_eq!(kept.records[0].refname(), Some("refs/tags/v1"));
        assert_eq!(kept.records[1].kind, Kind::Mark);
        assert_eq!(kept.last_seq(), 3);
        // Once every mirror has seen it, it goes.
        s.compact(&l, &kept, Floors::at(3)).unwrap();
        assert_eq!(s.read(&l).unwrap().records.len(), 1);
    }

    #[test]
    fn compaction_coalesces_and_keeps_seq() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path());
        let l = s.lock().unwrap();
        for i in 0..50u64 {
            s.append(
                &l,
                &[upd("refs/heads/a", '1'), upd("refs/heads/b", '2')],
                &[],
                100 + i,
            )
            .unwrap();
        }
        let c = s.read(&l).unwrap();
        s.compact(&l, &c, Floors::at(10)).unwrap();
        let c2 = s.read(&l).unwrap();
        assert_eq!(c2.records.len(), 2);
        assert_eq!(c2.last_seq(), 100);
        assert!(c2
            .records
            .iter()
            .all(|r| r.first_ms == 105 && r.last_ms == 149));
        s.compact(&l, &c2, Floors::at(100)).unwrap();
        let c3 = s.read(&l).unwrap();
        assert_eq!(c3.records.len(), 1);
        assert_eq!(c3.records[0].kind, Kind::Mark);
        s.append(&l, &[upd("refs/heads/a", '1')], &[], 200).unwrap();
        assert_eq!(s.read(&l).unwrap().last_seq(), 101);
    }
}
