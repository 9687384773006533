//! Name patterns (protected branches, the `repos:` of server rules): git's wildmatch with
//! `WM_PATHNAME`, the dialect of gitignore, pathspec globs and `for-each-ref` patterns, from
//! gitoxide's `gix-glob`, so that a pattern means here what it means to git users.
//!
//! Also `branch_regex` (GitLab's `mirror_branch_regex`, RE2 syntax via the `regex` crate).
//!
//! Shared by the config (which checks them when it loads) and the planner; it lives below both
//! so that loading the config does not pull in the network side.

use gix::glob::wildmatch::Mode;

/// Whether `text` matches `pattern`: `*` any run of chars except '/', `**` any run incl '/' (as a
/// whole path component; elsewhere it is a plain `*`, and `a/**/b` also matches `a/b`), `?` one
/// char except '/', `[abc]`, `[a-z]`, `[!x]`/`[^x]`, `[[:alpha:]]` classes, `\` escapes. A
/// malformed pattern (an unterminated class, a trailing backslash) matches nothing.
///
/// Where git compares bytes, this compares characters: `?` and classes take a non-ASCII letter
/// of a branch name as one character (`caf?` matches `café`), as this project always did. gix-glob
/// works on bytes, so each distinct non-ASCII character of the pair is given one byte above
/// 0x7f, in code point order (ranges like `[à-ü]` keep their meaning); with more than 128 distinct
/// ones, the raw bytes are compared as git would.
pub fn wildmatch(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return matches(pattern.as_bytes(), text.as_bytes());
    }
    match one_byte_per_char(pattern, text) {
        Some((pattern, text)) => matches(&pattern, &text),
        None => matches(pattern.as_bytes(), text.as_bytes()),
    }
}

fn matches(pattern: &[u8], text: &[u8]) -> bool {
    gix::glob::wildmatch(pattern.into(), text.into(), Mode::NO_MATCH_SLASH_LITERAL)
}

/// `pattern` and `text` re-encoded with one byte per character, keeping ASCII as it is and the
/// order of code points, or `None` if they hold more distinct non-ASCII characters than fit.
fn one_byte_per_char(pattern: &str, text: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut wide: Vec<char> = pattern
        .chars()
        .chain(text.chars())
        .filter(|c| !c.is_ascii())
        .collect();
    wide.sort_unstable();
    wide.dedup();
    if wide.len() > 0x80 {
        return None;
    }
    let byte = |c: char| match u8::try_from(c) {
        Ok(b) if b.is_ascii() => b,
        _ => 0x80 + wide.binary_search(&c).unwrap_or_default() as u8,
    };
    Some((
        pattern.chars().map(byte).collect(),
        text.chars().map(byte).collect(),
    ))
}

/// A compiled `branch_regex` (the `regex` crate: RE2 syntax, matching in linear time, so an
/// admin's pattern cannot make a sync hang). Compared by its source text.
#[derive(Debug, Clone)]
pub struct BranchRegex(regex::Regex);

/// GitLab's limit on `mirror_branch_regex`.
pub const BRANCH_REGEX_MAX: usize = 255;

impl BranchRegex {
    /// Compiles `pattern`; the error is one line naming what is wrong.
    pub fn new(pattern: &str) -> Result<BranchRegex, String> {
        if pattern.is_empty() {
            return Err("branch_regex is empty (remove the key to mirror every branch)".into());
        }
        if pattern.chars().count() > BRANCH_REGEX_MAX {
            return Err(format!(
                "branch_regex is longer than {BRANCH_REGEX_MAX} characters"
            ));
        }
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(BranchRegex)
            .map_err(|e| {
                let e = e.to_string();
                let last = e.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                format!(
                    "branch_regex `{pattern}` is not a valid RE2 regex: {}",
                    last.trim()
                )
            })
    }

    pub fn is_match(&self, branch: &str) -> bool {
        self.0.is_match(branch)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for BranchRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for BranchRegex {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildmatch_for_branch_patterns() {
        for (pattern, text, expected) in [
            ("main", "main", true),
            ("main", "main2", false),
            ("main", "xmain", false),
            ("release/*", "release/1", true),
            ("release/*", "release/a/b", false),
            ("release/*", "release/", true),
            ("release/*", "release", false),
            ("release/**", "release/a/b", true),
            ("release/**", "release/1", true),
            ("release/**/rc", "release/rc", true),
            ("release/**/rc", "release/1/2/rc", true),
            ("**/hotfix", "hotfix", true),
            ("**/hotfix", "team/a/hotfix", true),
            ("**", "any/thing/at/all", true),
            ("*", "main", true),
            ("*", "team/main", false),
            ("v[0-9]*", "v1", true),
            ("v[0-9]*", "v10.2", true),
            ("v[0-9]*", "v", false),
            ("v[0-9]*", "vx", false),
            ("v[0-9]*", "v1/x", false),
            ("[!a]*", "beta", true),
            ("[!a]*", "alpha", false),
            ("[^a]*", "alpha", false),
            ("[!a]", "/", false),
            ("?", "/", false),
            ("feat?", "feat1", true),
            ("feat?", "feat", false),
            ("feat?", "feat12", false),
            (r"feature\*", "feature*", true),
            (r"feature\*", "featurex", false),
            (r"a\?b", "a?b", true),
            (r"a\?b", "axb", false),
            (r"\[x]", "[x]", true),
            ("[[:digit:]]*", "2024", true),
            ("caf?", "café", true),
            ("caf[é]", "café", true),
            ("[", "[", false),
            ("[a-", "a", false),
            (r"main\", "main", false),
            ("", "", true),
            ("", "main", false),
            ("main", "", false),
        ] {
            assert_eq!(wildmatch(pattern, text), expected, "{pattern:?} ~ {text:?}");
        }
    }

    /// The WM_PATHNAME column of git's t/t3070-wildmatch.sh, as (text, pattern, expected).
    const GIT_WILDMATCH: &[(&str, &str, bool)] = &[
        // Basic wildmatch features
        ("foo", "foo", true),
        ("foo", "bar", false),
        ("", "", true),
        ("foo", "???", true),
        ("foo", "??", false),
        ("foo", "*", true),
        ("foo", "f*", true),
        ("foo", "*f", false),
        ("foo", "*foo*", true),
        ("foobar", "*ob*a*r*", true),
        ("aaaaaaabababab", "*ab", true),
        ("foo*", r"foo\*", true),
        ("foobar", r"foo\*bar", false),
        (r"f\oo", r"f\\oo", true),
        ("ball", "*[al]?", true),
        ("ten", "[ten]", false),
        ("ten", "**[!te]", true),
        ("ten", "**[!ten]", false),
        ("ten", "t[a-g]n", true),
        ("ten", "t[!a-g]n", false),
        ("ton", "t[!a-g]n", true),
        ("ton", "t[^a-g]n", true),
        ("a]b", "a[]]b", true),
        ("a-b", "a[]-]b", true),
        ("a]b", "a[]-]b", true),
        ("aab", "a[]-]b", false),
        ("aab", "a[]a-]b", true),
        ("]", "]", true),
        // Extended slash-matching features
        ("foo/baz/bar", "foo*bar", false),
        ("foo/baz/bar", "foo**bar", false),
        ("foobazbar", "foo**bar", true),
        ("foo/baz/bar", "foo/**/bar", true),
        ("foo/baz/bar", "foo/**/**/bar", true),
        ("foo/b/a/z/bar", "foo/**/bar", true),
        ("foo/b/a/z/bar", "foo/**/**/bar", true),
        ("foo/bar", "foo/**/bar", true),
        ("foo/bar", "foo/**/**/bar", true),
        ("foo/bar", "foo?bar", false),
        ("foo/bar", "foo[/]bar", false),
        ("foo/bar", "foo[^a-z]bar", false),
        ("foo/bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", false),
        ("foo-bar", "f[^eiu][^eiu][^eiu][^eiu][^eiu]r", true),
        ("foo", "**/foo", true),
        ("XXX/foo", "**/foo", true),
        ("bar/baz/foo", "**/foo", true),
        ("bar/baz/foo", "*/foo", false),
        ("foo/bar/baz", "**/bar*", false),
        ("deep/foo/bar/baz", "**/bar/*", true),
        ("deep/foo/bar/baz/", "**/bar/*", false),
        ("deep/foo/bar/baz/", "**/bar/**", true),
        ("deep/foo/bar", "**/bar/*", false),
        ("deep/foo/bar/", "**/bar/**", true),
        ("foo/bar/baz", "**/bar**", false),
        ("foo/bar/baz/x", "*/bar/**", true),
        ("deep/foo/bar/baz/x", "*/bar/**", false),
        ("deep/foo/bar/baz/x", "**/bar/*/*", true),
        // Various additional tests
        ("acrt", "a[c-c]st", false),
        ("acrt", "a[c-c]rt", true),
        ("]", "[!]-]", false),
        ("a", "[!]-]", true),
        ("", r"\", false),
        (r"\", r"\", false),
        (r"XXX/\", r"*/\", false),
        (r"XXX/\", r"*/\\", true),
        ("foo", "foo", true),
        ("@foo", "@foo", true),
        ("foo", "@foo", false),
        ("[ab]", r"\[ab]", true),
        ("[ab]", "[[]ab]", true),
        ("[ab]", "[[:]ab]", true),
        ("[ab]", "[[::]ab]", false),
        ("[ab]", "[[:digit]ab]", true),
        ("[ab]", r"[\[:]ab]", true),
        ("?a?b", r"\??\?b", true),
        ("abc", r"\a\b\c", true),
        ("foo", "", false),
        ("foo/bar/baz/to", "**/t[o]", true),
        // Character class tests
        ("a1B", "[[:alpha:]][[:digit:]][[:upper:]]", true),
        ("a", "[[:digit:][:upper:][:space:]]", false),
        ("A", "[[:digit:][:upper:][:space:]]", true),
        ("1", "[[:digit:][:upper:][:space:]]", true),
        ("1", "[[:digit:][:upper:][:spaci:]]", false),
        (" ", "[[:digit:][:upper:][:space:]]", true),
        (".", "[[:digit:][:upper:][:space:]]", false),
        (".", "[[:digit:][:punct:][:space:]]", true),
        ("5", "[[:xdigit:]]", true),
        ("f", "[[:xdigit:]]", true),
        ("D", "[[:xdigit:]]", true),
        (
            "_",
            "[[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:graph:][:lower:][:print:][:punct:][:space:][:upper:][:xdigit:]]",
            true,
        ),
        (
            ".",
            "[^[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:lower:][:space:][:upper:][:xdigit:]]",
            true,
        ),
        ("5", "[a-c[:digit:]x-z]", true),
        ("b", "[a-c[:digit:]x-z]", true),
        ("y", "[a-c[:digit:]x-z]", true),
        ("q", "[a-c[:digit:]x-z]", false),
        // Additional tests, including some malformed wildmatch patterns
        ("]", r"[\\-^]", true),
        ("[", r"[\\-^]", false),
        ("-", r"[\-_]", true),
        ("]", r"[\]]", true),
        (r"\]", r"[\]]", false),
        (r"\", r"[\]]", false),
        ("ab", "a[]b", false),
        ("a[]b", "a[]b", false),
        ("ab[", "ab[", false),
        ("ab", "[!", false),
        ("ab", "[-", false),
        ("-", "[-]", true),
        ("-", "[a-", false),
        ("-", "[!a-", false),
        ("-", "[--A]", true),
        ("5", "[--A]", true),
        (" ", "[ --]", true),
        ("$", "[ --]", true),
        ("-", "[ --]", true),
        ("0", "[ --]", false),
        ("-", "[---]", true),
        ("-", "[------]", true),
        ("j", "[a-e-n]", false),
        ("-", "[a-e-n]", true),
        ("a", "[!------]", true),
        ("[", "[]-a]", false),
        ("^", "[]-a]", true),
        ("^", "[!]-a]", false),
        ("[", "[!]-a]", true),
        ("^", "[a^bc]", true),
        ("-b]", "[a-]b]", true),
        (r"\", r"[\]", false),
        (r"\", r"[\\]", true),
        (r"\", r"[!\\]", false),
        ("G", r"[A-\\]", true),
        ("aaabbb", "b*a", false),
        ("aabcaa", "*ba*", false),
        (",", "[,]", true),
        (",", r"[\\,]", true),
        (r"\", r"[\\,]", true),
        ("-", "[,-.]", true),
        ("+", "[,-.]", false),
        ("-.]", "[,-.]", false),
        ("2", r"[\1-\3]", true),
        ("3", r"[\1-\3]", true),
        ("4", r"[\1-\3]", false),
        (r"\", r"[[-\]]", true),
        ("[", r"[[-\]]", true),
        ("]", r"[[-\]]", true),
        ("-", r"[[-\]]", false),
        // Test recursion
        (
            "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1",
            "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
            true,
        ),
        (
            "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1",
            "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
            false,
        ),
        (
            "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1",
            "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
            false,
        ),
        (
            "XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1",
            "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
            true,
        ),
        (
            "XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1",
            "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
            false,
        ),
        (
            "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt",
            "**/*a*b*g*n*t",
            true,
        ),
        (
            "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz",
            "**/*a*b*g*n*t",
            false,
        ),
        ("foo", "*/*/*", false),
        ("foo/bar", "*/*/*", false),
        ("foo/bba/arr", "*/*/*", true),
        ("foo/bb/aa/rr", "*/*/*", false),
        ("foo/bb/aa/rr", "**/**/**", true),
        ("abcXdefXghi", "*X*i", true),
        ("ab/cXd/efXg/hi", "*X*i", false),
        ("ab/cXd/efXg/hi", "*/*X*/*/*i", true),
        ("ab/cXd/efXg/hi", "**/*X*/**/*i", true),
        // Extra pathmatch tests
        ("foo", "fo", false),
        ("foo/bar", "foo/bar", true),
        ("foo/bar", "foo/*", true),
        ("foo/bba/arr", "foo/*", false),
        ("foo/bba/arr", "foo/**", true),
        ("foo/bba/arr", "foo*", false),
        ("foo/bba/arr", "foo**", false),
        ("foo/bba/arr", "foo/*arr", false),
        ("foo/bba/arr", "foo/**arr", false),
        ("foo/bba/arr", "foo/*z", false),
        ("foo/bba/arr", "foo/**z", false),
        ("foo/bar", "foo?bar", false),
        ("foo/bar", "foo[/]bar", false),
        ("foo/bar", "foo[^a-z]bar", false),
        ("ab/cXd/efXg/hi", "*Xg*i", false),
        // Extra case-sensitivity tests
        ("a", "[A-Z]", false),
        ("A", "[A-Z]", true),
        ("A", "[a-z]", false),
        ("a", "[a-z]", true),
        ("a", "[[:upper:]]", false),
        ("A", "[[:upper:]]", true),
        ("A", "[[:lower:]]", false),
        ("a", "[[:lower:]]", true),
        ("A", "[B-Za]", false),
        ("a", "[B-Za]", true),
        ("A", "[B-a]", false),
        ("a", "[B-a]", true),
        ("z", "[Z-y]", false),
        ("Z", "[Z-y]", true),
    ];

    #[test]
    fn wildmatch_agrees_with_git_test_suite() {
        let failures: Vec<_> = GIT_WILDMATCH
            .iter()
            .filter(|(text, pattern, expected)| wildmatch(pattern, text) != *expected)
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn wildmatch_stays_fast_on_pathological_patterns() {
        let text = "a".repeat(64);
        let pattern = format!("{}b", "*a".repeat(32));
        assert!(!wildmatch(&pattern, &text));
        let nested = format!("{}b", "**/".repeat(16));
        assert!(!wildmatch(&nested, &"a/".repeat(32)));
    }

    /// Where gix-glob and git differ: gix-glob gives up (no match) after 64 nested `*`
    /// retries, which git does not have; `git for-each-ref 'refs/heads/a*a*...'` with 70 `a*`
    /// lists a branch of 70 `a`s. No real branch pattern comes near it, and a pattern that
    /// cannot finish matches nothing rather than keeping the flusher busy.
    #[test]
    fn gix_glob_stops_at_64_nested_stars_where_git_goes_on() {
        let text = "a".repeat(70);
        assert!(wildmatch(&"a*".repeat(30), &text));
        assert!(!wildmatch(&"a*".repeat(70), &text), "git says: match");
    }

    #[test]
    fn non_ascii_letters_are_one_character_and_keep_their_order() {
        for (pattern, text, expected) in [
            ("[à-ü]x", "éx", true),
            ("[à-é]x", "üx", false),
            ("[!é]", "ü", true),
            ("??", "éü", true),
            ("?", "éü", false),
            ("*é/*", "café/x", true),
            ("[[:alpha:]]", "é", false),
        ] {
            assert_eq!(wildmatch(pattern, text), expected, "{pattern:?} ~ {text:?}");
        }
        // More distinct non-ASCII characters than one byte can number: compared as bytes, like git.
        let many: String = ('\u{100}'..'\u{200}').collect();
        assert!(wildmatch(&many, &many));
        let all_but_last: String = ('\u{100}'..'\u{1ff}').collect();
        assert!(!wildmatch(&format!("{all_but_last}?"), &many));
    }
}
