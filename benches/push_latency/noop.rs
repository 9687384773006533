//! Row group 5: the cost of a sync with nothing to send.

use std::time::Duration;

use super::*;

/// Row group 5: the cost of a sync with nothing to send (spec §8), for a local mirror and an SSH
/// mirror on loopback that are already up to date. Measured two ways: what the user waits for,
/// the wall time of `git-pushmirror sync NAME --wait` (request spooled, flusher started, sync,
/// state polled); and the sync itself as the flusher recorded it in the mirror's state file
/// (started → finished: `git ls-remote` of the mirror, the upstream's refs, the plan, and no
/// `git push` at all). The references, in the same loop: `git ls-remote` of the mirror (the
/// floor: a no-op sync must at least list the mirror) and a no-op `git push --mirror` from the
/// upstream (what the naive hook would pay). Every sample waits for the flushers first, so each
/// sync is a cold request (the usual case for "Update now"), and no flusher winds down during a
/// reference measurement; the three measurements rotate their order per sample.
pub(crate) fn noop_sync(b: &Bench, ssh: Result<&SshServer, &String>, table: &mut Table) {
    eprintln!("bench: no-op sync, {NOOP_RUNS} runs per mirror");
    let up = b.upstream("noop.git");
    let mut mirrors = vec![("local mirror", "local", b.local_target("noop-local.git"))];
    if let Ok(ssh) = ssh {
        mirrors.push(("SSH mirror", "ssh", b.ssh_target(ssh, "noop-ssh.git")));
    }
    for (_, name, t) in &mirrors {
        b.add_mirror(&up, name, t, &[]);
    }
    let wc = b.worktree("wc-noop");
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    let want = b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    for (_, name, _) in &mirrors {
        b.sync_wait(&up, name);
    }
    b.wait_flushers(Duration::from_secs(60));

    for (label, name, t) in &mirrors {
        let (mut wall, mut recorded, mut ls, mut push) = (vec![], vec![], vec![], vec![]);
        let mut sent = 0;
        for i in 0..NOOP_RUNS {
            for k in 0..3 {
                b.wait_flushers(Duration::from_secs(30));
                match (i + k) % 3 {
                    0 => {
                        let (w, r, refs) = b.sync_wait(&up, name);
                        wall.push(w);
                        recorded.push(r);
                        sent += refs;
                    }
                    1 => ls.push(timed(&mut b.git_to(&up, &["ls-remote"], t))),
                    _ => push.push(timed(&mut b.git_to(
                        &up,
                        &["push", "--quiet", "--mirror"],
                        t,
                    ))),
                }
            }
        }
        let ok = rev(b, &t.dir) == want && sent == 0;
        if !ok {
            eprintln!(
                "bench: WARNING: no-op sync, {label}: mirror main is not {want}, or a sync sent \
                 {sent} refs"
            );
        }
        let (wall, recorded) = (Stats::of(wall), Stats::of(recorded));
        let (ls, push) = (Stats::of(ls), Stats::of(push));
        let refs = format!(
            "vs `git ls-remote` {} / {}, vs no-op `git push --mirror` {} / {}{}",
            plus(recorded.median, ls.median),
            plus(recorded.p99, ls.p99),
            plus(recorded.median, push.median),
            plus(recorded.p99, push.p99),
            if ok { "" } else { "; NOT A NO-OP (see stderr)" }
        );
        // The target cannot be met where one `git ls-remote` alone takes longer (an SSH
        // connection here): the row then says so instead of a bare MISSED.
        let floor = ls.median >= 50.0;
        let target = |s: &Stats| {
            format!(
                "target < 50 ms on loopback ({}{})",
                verdict(s.median < 50.0, s.p99 < 50.0),
                if floor {
                    format!(
                        "; below the floor: the `git ls-remote` any sync needs takes {} here",
                        ms(ls.median)
                    )
                } else {
                    String::new()
                }
            )
        };
        table.stats(
            &format!(
                "no-op sync, {label}: `sync {name} --wait` wall time (cold: starts a flusher)"
            ),
            &wall,
            format!(
                "{}; {} / {} vs the sync as recorded",
                target(&wall),
                plus(wall.median, recorded.median),
                plus(wall.p99, recorded.p99)
            ),
        );
        table.stats(
            &format!("no-op sync, {label}: the sync as the flusher recorded it (ms resolution)"),
            &recorded,
            format!("{}; {refs}", target(&recorded)),
        );
        table.stats(
            &format!("no-op sync, {label}: reference `git ls-remote`"),
            &ls,
            "the listing every sync starts with".into(),
        );
        table.stats(
            &format!("no-op sync, {label}: reference no-op `git push --mirror`"),
            &push,
            "what the naive hook pays when nothing changed".into(),
        );
    }
    if let Err(why) = ssh {
        table.row(
            "no-op sync, SSH mirror",
            0,
            why.clone(),
            "—".into(),
            "—".into(),
        );
    }
}
