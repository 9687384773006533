//! Format-preserving edits of `pushmirror/config.yaml`.
//!
//! `add`, `set`, `remove`, `enable` and `disable` compute the new configuration as a value; this
//! module turns the file's current text into text for that value while touching only the
//! lines that must change, so the admin's comments, key order, quoting and blank lines
//! elsewhere survive. It understands the block-style YAML subset the tool writes and people
//! usually write (a top-level `mirrors:` sequence of block mappings, nested block mappings
//! such as `auth:`, any value on one line or as an indented block). Anything else (flow-style
//! lists of mirrors, anchors, several mirrors per line, ...) is reported as an error, and the
//! caller falls back to a full rewrite, saying so.
//!
//! The approach is a structural diff, not a YAML round trip: per mirror, per key, the old and
//! new values are compared as serialised by the strict model; only keys whose value changed
//! are rewritten (a changed nested mapping is edited key by key), removed keys are deleted,
//! new keys are appended to their mapping, removed mirrors are cut (with the comment block
//! directly above them), new mirrors are appended to the list. The caller re-parses the
//! result with the strict loader and only keeps it if it means exactly the new configuration.

use serde_yaml::{Mapping, Value};

use super::{MirrorConfig, RepoConfig};

/// One replacement of original lines `start..end` by `lines`; `seq` orders edits at the same
/// position (the one made first ends up first).
struct Edit {
    start: usize,
    end: usize,
    lines: Vec<String>,
    seq: usize,
}

struct Editor<'a> {
    lines: Vec<&'a str>,
    edits: Vec<Edit>,
}

fn indent_of(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

fn blank_or_comment(l: &str) -> bool {
    let t = l.trim();
    t.is_empty() || t.starts_with('#')
}

/// The plain key starting at column `col` of `l` (`key:` followed by the end or a blank).
fn key_at(l: &str, col: usize) -> Option<&str> {
    let rest = l.get(col..)?;
    let len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if len == 0 {
        return None;
    }
    let after = &rest[len..];
    let after = after.strip_prefix(':')?;
    (after.is_empty() || after.starts_with(' ')).then_some(&rest[..len])
}

/// The inline ` # comment` of a one-line `key: value`, if any (outside quotes).
fn inline_comment(l: &str) -> Option<&str> {
    let (mut single, mut double) = (false, false);
    let b = l.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && i > 0 && b[i - 1] == b' ' => {
                let mut s = i;
                while s > 0 && b[s - 1] == b' ' {
                    s -= 1;
                }
                return Some(l[s..].trim_end());
            }
            _ => {}
        }
    }
    None
}

/// `key: value` (or a block) as the tool would write it, indented by `ind`.
fn render(key: &str, value: &Value, ind: usize) -> Result<Vec<String>, String> {
    let mut m = Mapping::new();
    m.insert(Value::String(key.into()), value.clone());
    let text = serde_yaml::to_string(&m).map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .map(|l| format!("{}{l}", " ".repeat(ind)))
        .collect())
}

fn as_map(v: &Value) -> Option<&Mapping> {
    v.as_mapping()
}

fn get<'v>(m: &'v Mapping, k: &str) -> Option<&'v Value> {
    m.get(Value::String(k.into()))
}

impl<'a> Editor<'a> {
    fn push(&mut self, start: usize, end: usize, lines: Vec<String>) {
        let seq = self.edits.len();
        self.edits.push(Edit {
            start,
            end,
            lines,
            seq,
        });
    }

    /// Where the value of the key on line `at` (a key at column `ind`) ends, exclusive,
    /// before `end`: at the next line less indented, or at `ind` and not a `- ` item of a
    /// sequence written at the key's own indent; trailing blank and comment lines are left
    /// to what follows.
    fn value_end(&self, at: usize, end: usize, ind: usize) -> usize {
        let mut j = at + 1;
        while j < end {
            let l = self.lines[j];
            if !blank_or_comment(l) {
                let i = indent_of(l);
                if i < ind || (i == ind && !(l[i..].starts_with("- ") || &l[i..] == "-")) {
                    break;
                }
            }
            j += 1;
        }
        while j > at + 1 && blank_or_comment(self.lines[j - 1]) {
            j -= 1;
        }
        j
    }

    /// The keys of the block mapping on lines `start..end` at column `ind` (the first line may
    /// start with the `- ` of a sequence item), with the line each is on.
    fn keys(&self, start: usize, end: usize, ind: usize) -> Result<Vec<(String, usize)>, String> {
        let mut keys = Vec::new();
        let mut i = start;
        while i < end {
            let l = self.lines[i];
            if blank_or_comment(l) {
                i += 1;
                continue;
            }
            if i != start && indent_of(l) != ind {
                return Err(format!("line {}: unexpected indentation", i + 1));
            }
            let k = key_at(l, ind).ok_or_else(|| format!("line {}: not a `key:` line", i + 1))?;
            keys.push((k.to_string(), i));
            i = self.value_end(i, end, ind);
        }
        Ok(keys)
    }

    /// Edits the block mapping on lines `start..end` (keys at column `ind`) from `old` to
    /// `new`, both as the strict model serialises them.
    fn patch_map(
        &mut self,
        start: usize,
        end: usize,
        ind: usize,
        old: &Mapping,
        new: &Mapping,
    ) -> Result<(), String> {
        let keys = self.keys(start, end, ind)?;
        let find = |k: &str| keys.iter().find(|(x, _)| x == k).map(|(_, l)| *l);
        let mut all: Vec<String> = old
            .keys()
            .chain(new.keys())
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        all.retain(|k| seen.insert(k.clone()));
        let last_end = keys
            .last()
            .map_or(start + 1, |(_, l)| self.value_end(*l, end, ind));
        for k in all {
            let (o, n) = (get(old, &k), get(new, &k));
            if o == n {
                continue;
            }
            let at = find(&k);
            match (at, n) {
                (None, None) => {}
                (Some(at), None) => {
                    if at == start {
                        return Err(format!(
                            "line {}: cannot remove the first key of an item",
                            at + 1
                        ));
                    }
                    let e = self.value_end(at, end, ind);
                    self.push(at, e, Vec::new());
                }
                (None, Some(n)) => {
                    let lines = render(&k, n, ind)?;
                    self.push(last_end, last_end, lines);
                }
                (Some(at), Some(n)) => {
                    let e = self.value_end(at, end, ind);
                    let line = self.lines[at];
                    let block = line[ind..]
                        .split_once(':')
                        .is_some_and(|(_, v)| blank_or_comment(v));
                    if let (Some(om), Some(nm), true) = (o.and_then(as_map), as_map(n), block) {
                        if e > at + 1 {
                            let child = self.lines[at + 1..e]
                                .iter()
                                .find(|l| !blank_or_comment(l))
                                .map(|l| indent_of(l))
                                .unwrap_or(ind + 2);
                            if child > ind {
                                self.patch_map(at + 1, e, child, om, nm)?;
                                continue;
                            }
                        }
                    }
                    let mut lines = render(&k, n, ind)?;
                    // Keep what precedes the key on its line (`- ` of an item).
                    lines[0] = format!("{}{}", &line[..ind], &lines[0][ind..]);
                    if lines.len() == 1 && e == at + 1 {
                        if let Some(c) = inline_comment(line) {
                            lines[0].push_str(c);
                        }
                    }
                    self.push(at, e, lines);
                }
            }
        }
        Ok(())
    }

    fn apply(mut self) -> Vec<String> {
        self.edits
            .sort_by(|a, b| b.start.cmp(&a.start).then(b.seq.cmp(&a.seq)));
        let mut out: Vec<String> = self.lines.iter().map(|l| l.to_string()).collect();
        for e in self.edits {
            out.splice(e.start..e.end, e.lines);
        }
        out
    }
}

fn ser(m: &MirrorConfig) -> Result<Mapping, String> {
    match serde_yaml::to_value(m).map_err(|e| e.to_string())? {
        Value::Mapping(m) => Ok(m),
        _ => Err("a mirror did not serialise to a mapping".into()),
    }
}

/// `text` (which parses to `old`) edited to mean `new`, touching only what changed.
pub fn edit_text(text: &str, old: &RepoConfig, new: &RepoConfig) -> Result<String, String> {
    if old.defaults != new.defaults {
        return Err("the defaults changed".into());
    }
    let mut ed = Editor {
        lines: text.lines().collect(),
        edits: Vec::new(),
    };
    let n = ed.lines.len();
    if text.contains('\t') {
        return Err("the file contains tabs".into());
    }
    let mirrors_line = (0..n).find(|&i| key_at(ed.lines[i], 0) == Some("mirrors"));
    // The items of the top-level `mirrors:` sequence: (dash line, end), and the dash column.
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut dash = 0;
    if let Some(ml) = mirrors_line {
        let inline = ed.lines[ml]["mirrors:".len()..].trim();
        let inline = inline.split(" #").next().unwrap_or("").trim();
        if !inline.is_empty() && !inline.starts_with('#') && inline != "[]" {
            return Err(format!("line {}: a flow-style mirrors list", ml + 1));
        }
        let mut i = ml + 1;
        while i < n {
            let l = ed.lines[i];
            if !blank_or_comment(l) {
                let ind = indent_of(l);
                if ind == 0 && !l.starts_with("- ") {
                    break;
                }
                if l[ind..].starts_with("- ") {
                    if items.is_empty() {
                        dash = ind;
                    }
                    if ind == dash {
                        if let Some(last) = items.last_mut() {
                            last.1 = i;
                        }
                        items.push((i, n));
                    }
                }
            }
            i += 1;
        }
        if let Some(last) = items.last_mut() {
            last.1 = i;
        }
        for it in items.iter_mut() {
            while it.1 > it.0 + 1 && blank_or_comment(ed.lines[it.1 - 1]) {
                it.1 -= 1;
            }
        }
        if !inline.is_empty() && inline == "[]" && !items.is_empty() {
            return Err(format!("line {}: `mirrors: []` followed by items", ml + 1));
        }
    }
    if items.len() != old.mirrors.len() {
        return Err("the mirrors list is not in block style, one item per mirror".into());
    }
    // The mirrors kept must keep their order; new ones come last.
    let kept: Vec<&str> = new
        .mirrors
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| old.find(n).is_some())
        .collect();
    let old_kept: Vec<&str> = old
        .mirrors
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| new.find(n).is_some())
        .collect();
    if kept != old_kept {
        return Err("the mirrors were reordered".into());
    }
    let first_new = new
        .mirrors
        .iter()
        .position(|m| old.find(&m.name).is_none())
        .unwrap_or(new.mirrors.len());
    if new.mirrors[first_new..]
        .iter()
        .any(|m| old.find(&m.name).is_some())
    {
        return Err("a new mirror is not at the end".into());
    }
    for (m, &(start, end)) in old.mirrors.iter().zip(&items) {
        let key_col = {
            let l = ed.lines[start];
            dash + 1 + l[dash + 1..].len() - l[dash + 1..].trim_start_matches(' ').len()
        };
        match new.find(&m.name) {
            None => {
                // The comment block directly above the item goes with it.
                let mut s = start;
                while s > 0 && {
                    let l = ed.lines[s - 1];
                    l.trim_start().starts_with('#') && indent_of(l) >= dash
                } {
                    s -= 1;
                }
                ed.push(s, end, Vec::new());
            }
            Some(nm) if nm == m => {}
            Some(nm) => {
                let (o, n) = (ser(m)?, ser(nm)?);
                ed.patch_map(start, end, key_col, &o, &n)?;
            }
        }
    }
    let added = &new.mirrors[first_new..];
    if !added.is_empty() {
        let text = serde_yaml::to_string(&added.to_vec()).map_err(|e| e.to_string())?;
        let lines: Vec<String> = text
            .lines()
            .map(|l| format!("{}{l}", " ".repeat(dash)))
            .collect();
        match mirrors_line {
            Some(ml) => {
                let at = items.last().map_or(ml + 1, |it| it.1);
                if items.is_empty() {
                    let c = inline_comment(ed.lines[ml]).unwrap_or("");
                    ed.push(ml, ml + 1, vec![format!("mirrors:{c}")]);
                }
                ed.push(at, at, lines);
            }
            None => {
                let mut block = vec!["mirrors:".to_string()];
                block.extend(lines);
                ed.push(n, n, block);
            }
        }
    } else if new.mirrors.is_empty() && !old.mirrors.is_empty() {
        if let Some(ml) = mirrors_line {
            let c = inline_comment(ed.lines[ml]).unwrap_or("");
            ed.push(ml, ml + 1, vec![format!("mirrors: []{c}")]);
        }
    }
    // A file written with CRLF line endings keeps them (`lines()` took the `\r` off).
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = ed.apply().join(eol);
    out.push_str(eol);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> RepoConfig {
        serde_yaml::from_str(t).unwrap()
    }

    /// Applies `f` to the config `text` means, edits the text, and checks the result means
    /// the edited config.
    fn edit(text: &str, f: impl FnOnce(&mut RepoConfig)) -> String {
        let old = parse(text);
        let mut new = old.clone();
        f(&mut new);
        let out = edit_text(text, &old, &new).unwrap();
        assert_eq!(parse(&out), new, "{out}");
        out
    }

    const COMMENTED: &str = "\
# Mirrors of app.git. Ask #infra before changing the GitHub token.

defaults:
  debounce: 2s   # CI pushes in bursts

mirrors:
  # The public copy.
  - name: github
    url: https://github.com/acme/app.git
    auth:
      method: password
      username: x-access-token   # a GitHub App token
      password_file: /etc/git-pushmirror/github.token
    protected:
      - main
      - 'release/*'
    debounce: 5s # GitHub rate limits

  # Backup on the NAS; keep divergent refs, people push there by hand.
  - name: nas
    url: /srv/backup/app.git
    keep_divergent_refs: true

# end of file
";

    #[test]
    fn one_key_changed_changes_one_line() {
        let out = edit(COMMENTED, |c| {
            c.mirrors[0].debounce = Some(crate::config::Dur::parse("10s").unwrap())
        });
        assert_eq!(
            out,
            COMMENTED.replace(
                "    debounce: 5s # GitHub rate limits",
                "    debounce: 10s # GitHub rate limits"
            )
        );
        let out = edit(COMMENTED, |c| c.mirrors[1].enabled = false);
        assert_eq!(
            out,
            COMMENTED.replace(
                "    keep_divergent_refs: true\n",
                "    keep_divergent_refs: true\n    enabled: false\n"
            )
        );
        let out = edit(&out, |c| c.mirrors[1].enabled = true);
        assert_eq!(out, COMMENTED);
    }

    #[test]
    fn nested_and_list_values() {
        let out = edit(COMMENTED, |c| {
            if let crate::config::Auth::Password { username, .. } = &mut c.mirrors[0].auth {
                *username = "bot".into();
            }
        });
        assert_eq!(
            out,
            COMMENTED.replace(
                "      username: x-access-token   # a GitHub App token",
                "      username: bot   # a GitHub App token"
            )
        );
        let out = edit(COMMENTED, |c| c.mirrors[0].protected = vec!["main".into()]);
        assert!(
            out.contains("    protected:\n    - main\n    debounce: 5s"),
            "{out}"
        );
        assert!(out.contains("# The public copy.") && out.contains("# end of file"));
        let out = edit(COMMENTED, |c| c.mirrors[0].protected.clear());
        assert!(
            !out.contains("protected") && !out.contains("release/*"),
            "{out}"
        );
    }

    #[test]
    fn remove_and_add_mirrors() {
        let out = edit(COMMENTED, |c| {
            c.mirrors.remove(1);
        });
        assert_eq!(
            out,
            COMMENTED.replace(
                "  # Backup on the NAS; keep divergent refs, people push there by hand.\n  - name: nas\n    url: /srv/backup/app.git\n    keep_divergent_refs: true\n",
                ""
            )
        );
        let out = edit(COMMENTED, |c| {
            c.mirrors.push(MirrorConfig::new(
                "gitlab",
                "https://gitlab.example.com/a.git",
            ));
        });
        assert!(
            out.contains("    keep_divergent_refs: true\n  - name: gitlab\n    url: https://gitlab.example.com/a.git\n\n# end of file\n"),
            "{out}"
        );
        let out = edit(COMMENTED, |c| c.mirrors.clear());
        assert!(
            out.contains("mirrors: []\n") && out.contains("# end of file"),
            "{out}"
        );
        let out = edit(&out, |c| {
            c.mirrors.push(MirrorConfig::new("a", "/srv/a.git"))
        });
        assert!(
            out.contains("mirrors:\n- name: a\n  url: /srv/a.git\n"),
            "{out}"
        );
        let out = edit("# only a comment\n", |c| {
            c.mirrors.push(MirrorConfig::new("a", "/srv/a.git"))
        });
        assert_eq!(
            out,
            "# only a comment\nmirrors:\n- name: a\n  url: /srv/a.git\n"
        );
    }

    #[test]
    fn first_key_on_the_dash_line_and_flow_values() {
        let text = "mirrors:\n- url: /srv/a.git # first\n  name: a\n  auth: {method: ssh_key, key_file: /k}\n";
        let out = edit(text, |c| c.mirrors[0].url = "/srv/b.git".into());
        assert_eq!(out, text.replace("/srv/a.git", "/srv/b.git"));
        let out = edit(text, |c| c.mirrors[0].auth = crate::config::Auth::None);
        assert_eq!(out, "mirrors:\n- url: /srv/a.git # first\n  name: a\n");
        let out = edit(text, |c| {
            c.mirrors[0].auth = crate::config::Auth::SshKey {
                key_file: "keys/a".into(),
                known_hosts: Some("keys/a.known_hosts".into()),
                host_key: None,
            }
        });
        assert!(
            out.ends_with("  name: a\n  auth:\n    method: ssh_key\n    key_file: keys/a\n    known_hosts: keys/a.known_hosts\n"),
            "{out}"
        );
    }

    #[test]
    fn crlf_line_endings_are_kept() {
        let text = "# comment\r\nmirrors:\r\n- name: a\r\n  url: /srv/a.git\r\n";
        let out = edit(text, |c| c.mirrors[0].url = "/srv/b.git".into());
        assert_eq!(out, text.replace("/srv/a.git", "/srv/b.git"));
        let out = edit(text, |c| {
            c.mirrors.push(MirrorConfig::new("b", "/srv/b.git"))
        });
        assert_eq!(
            out,
            format!("{text}- name: b\r\n  url: /srv/b.git\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn unknown_shapes_are_refused_not_mangled() {
        let flow = "mirrors: [{name: a, url: /srv/a.git}]\n";
        let old = parse(flow);
        let mut new = old.clone();
        new.mirrors[0].enabled = false;
        assert!(edit_text(flow, &old, &new).is_err());
    }
}
