//! Suites: a named list of scenario runs, e.g. `smoke`. A run names a scenario file (or a
//! glob of them) and the profiles to run it on; rows may run several seeds; a release suite
//! names a baseline suite run and the thresholds a row may not regress past.

use serde::{Deserialize, Serialize};

use crate::locate;
use crate::scenario::{Profile, ScenarioError};

/// The most seeds a row may run.
pub const MAX_SEEDS: u32 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How many seeds every row runs (`seed`, `seed + 1`, ...) unless its run says otherwise.
    #[serde(default)]
    pub seeds: Option<u32>,
    /// A previous run of a suite to compare each row with, and the thresholds.
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// Where every row runs unless the command line says (`--env` wins over this, and this
    /// over each scenario's own `environment`).
    #[serde(default)]
    pub environment: Option<crate::EnvKind>,
    #[serde(rename = "run")]
    pub runs: Vec<SuiteRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteRun {
    /// Path of the scenario file, relative to the suite file; `*` and `?` match within one
    /// path component (`mediconnect/*.toml`), expanded in sorted order.
    pub scenario: String,
    /// Overrides the scenario's profile.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Runs each scenario on each of these profiles, one row per profile.
    #[serde(default)]
    pub profiles: Option<Vec<Profile>>,
    /// Overrides the suite's `seeds` for these rows.
    #[serde(default)]
    pub seeds: Option<u32>,
}

/// `[baseline]`: where a previous suite run is, and how far a row may regress from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// A suite run directory (holding `index.json`), relative to the repository root or
    /// absolute; `--baseline DIR` overrides it.
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub p99_ratio: Option<f64>,
    #[serde(default)]
    pub error_share_delta: Option<f64>,
    #[serde(default)]
    pub recovery_ratio: Option<f64>,
}

/// How far a candidate may regress from its baseline, phase by phase; an absent threshold is
/// not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A phase's p99 latency may grow to at most this multiple of the baseline's (e.g. 1.5).
    pub p99_ratio: Option<f64>,
    /// A phase's share of ops not ok may grow by at most this much (0.02: two points).
    pub error_share_delta: Option<f64>,
    /// The time to recover from each heal may grow to at most this multiple.
    pub recovery_ratio: Option<f64>,
}

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        self.p99_ratio.is_none()
            && self.error_share_delta.is_none()
            && self.recovery_ratio.is_none()
    }

    /// Each threshold within its bounds: the field (as in `[baseline]`) and why not.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, v) in [
            ("p99_ratio", self.p99_ratio),
            ("recovery_ratio", self.recovery_ratio),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 1.0)
            {
                return Err((field, format!("expected a ratio of at least 1, found {v}")));
            }
        }
        if let Some(v) = self.error_share_delta
            && !(0.0..=1.0).contains(&v)
        {
            return Err((
                "error_share_delta",
                format!("expected a share in [0, 1], found {v}"),
            ));
        }
        Ok(())
    }
}

impl Baseline {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            p99_ratio: self.p99_ratio,
            error_share_delta: self.error_share_delta,
            recovery_ratio: self.recovery_ratio,
        }
    }
}

/// One row of a suite: a scenario file on a profile (`None`: the scenario's own), run
/// `seeds` times. `run` is the index of the `[[run]]` it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteRow {
    pub run: usize,
    pub scenario: String,
    pub profile: Option<Profile>,
    pub seeds: u32,
}

impl Suite {
    pub fn parse(file: &str, text: &str) -> Result<Suite, ScenarioError> {
        let suite: Suite = locate::from_toml(file, text)?;
        suite
            .validate()
            .map_err(|(field, message)| locate::field_error(file, text, field, message))?;
        Ok(suite)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: String, msg: &str| Err((field, msg.to_string()));
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "name".into(),
                "use letters, digits, '-' and '_' (it names directories)",
            );
        }
        if self.runs.is_empty() {
            return bad("run".into(), "a suite lists at least one [[run]]");
        }
        let seeds_ok = |n: Option<u32>| n.is_none_or(|n| (1..=MAX_SEEDS).contains(&n));
        if !seeds_ok(self.seeds) {
            return bad("seeds".into(), "expected 1 to 100 seeds");
        }
        for (i, r) in self.runs.iter().enumerate() {
            let at = |f: &str| format!("run[{i}].{f}");
            if let Err(m) = check_pattern(&r.scenario) {
                return Err((at("scenario"), m));
            }
            match (&r.profile, &r.profiles) {
                (Some(_), Some(_)) => {
                    return bad(at("profiles"), "give profile or profiles, not both");
                }
                (None, Some(ps)) if ps.is_empty() => {
                    return bad(at("profiles"), "name at least one profile");
                }
                (None, Some(ps)) if ps.iter().enumerate().any(|(k, p)| ps[..k].contains(p)) => {
                    return bad(at("profiles"), "a profile is named twice");
                }
                _ => {}
            }
            if !seeds_ok(r.seeds) {
                return bad(at("seeds"), "expected 1 to 100 seeds");
            }
        }
        if let Some(b) = &self.baseline {
            let t = b.thresholds();
            if t.is_empty() {
                return bad(
                    "baseline".into(),
                    "name at least one threshold: p99_ratio, error_share_delta or recovery_ratio",
                );
            }
            if let Err((field, m)) = t.check() {
                return Err((format!("baseline.{field}"), m));
            }
            if b.dir.as_deref().is_some_and(|d| d.trim().is_empty()) {
                return bad("baseline.dir".into(), "must not be empty");
            }
        }
        Ok(())
    }

    /// The rows, in order: each run's scenario pattern expanded (sorted), each file on each
    /// of its profiles. `list(dir)` names the entries of a directory relative to the suite
    /// file (`""` for its own); errors carry the run's line. A glob matching nothing, or a
    /// row named twice, is an error.
    pub fn rows(
        &self,
        file: &str,
        text: &str,
        mut list: impl FnMut(&str) -> Result<Vec<String>, String>,
    ) -> Result<Vec<SuiteRow>, ScenarioError> {
        let mut rows: Vec<SuiteRow> = Vec::new();
        for (i, r) in self.runs.iter().enumerate() {
            let err = |m: String| locate::field_error(file, text, format!("run[{i}].scenario"), m);
            let files = expand(&r.scenario, &mut list).map_err(err)?;
            if files.is_empty() {
                return Err(err(format!("{:?} matches no file", r.scenario)));
            }
            let profiles: Vec<Option<Profile>> = match (&r.profile, &r.profiles) {
                (_, Some(ps)) => ps.iter().copied().map(Some).collect(),
                (p, None) => vec![*p],
            };
            for f in files {
                for p in &profiles {
                    if let Some(prev) = rows.iter().find(|x| x.scenario == f && x.profile == *p) {
                        let on = p.map_or_else(|| "its own profile".into(), |p| p.to_string());
                        return Err(err(format!(
                            "{f} on {on} is already a row (from run[{}])",
                            prev.run
                        )));
                    }
                    rows.push(SuiteRow {
                        run: i,
                        scenario: f.clone(),
                        profile: *p,
                        seeds: r.seeds.or(self.seeds).unwrap_or(1),
                    });
                }
            }
        }
        Ok(rows)
    }
}

fn is_wild(component: &str) -> bool {
    component.contains(['*', '?'])
}

/// A scenario path or pattern: not empty, `*` and `?` the only wildcards.
fn check_pattern(p: &str) -> Result<(), String> {
    if p.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if p.contains("**") {
        return Err("`**` is not supported: `*` matches within one directory".into());
    }
    if p.contains(['[', ']', '{', '}']) {
        return Err("only `*` and `?` are wildcards".into());
    }
    if p.ends_with('/') {
        return Err("names a directory, not a scenario file".into());
    }
    Ok(())
}

/// The paths a pattern names: literal components are kept, wildcard components matched
/// against the listing of the directory so far; sorted.
fn expand(
    pattern: &str,
    list: &mut impl FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    if !is_wild(pattern) {
        return Ok(vec![pattern.to_string()]);
    }
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else if a.ends_with('/') {
            format!("{a}{b}")
        } else {
            format!("{a}/{b}")
        }
    };
    let mut paths = vec![if pattern.starts_with('/') {
        "/".to_string()
    } else {
        String::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if is_wild(comp) {
            let mut next = Vec::new();
            for p in &paths {
                let mut names = list(p)?;
                names.sort();
                next.extend(
                    names
                        .iter()
                        .filter(|n| glob_match(comp, n))
                        .map(|n| join(p, n)),
                );
            }
            paths = next;
        } else {
            for p in &mut paths {
                *p = join(p, comp);
            }
        }
    }
    paths.sort();
    Ok(paths)
}

/// Whether a file name matches one path component of a pattern: `*` any run of characters,
/// `?` one character; a leading `.` is matched only by a leading `.` (as in a shell).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point (the last `*`).
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, ScenarioError> {
        Suite::parse("s.toml", text)
    }

    #[test]
    fn parses_runs_and_rejects_an_empty_suite() {
        let s = parse("name = \"smoke\"\n[[run]]\nscenario = \"a.toml\"\nprofile = \"naive\"\n")
            .unwrap();
        assert_eq!(s.runs[0].profile, Some(Profile::Naive));
        let e = parse("name = \"smoke\"\nrun = []\n").unwrap_err();
        assert_eq!(e.field, "run");
        let e = parse("name = \"smoke\"\n[[run]]\nscenario = \"a.toml\"\nprofle = \"x\"\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn bad_fields_are_named_with_their_line() {
        let cases = [
            (
                "name = \"s\"\n[[run]]\nscenario = \"a.toml\"\nprofile = \"naive\"\nprofiles = [\"hardened\"]\n",
                "run[0].profiles",
                Some(5),
                "not both",
            ),
            (
                "name = \"s\"\n[[run]]\nscenario = \"a.toml\"\nprofiles = []\n",
                "run[0].profiles",
                Some(4),
                "at least one",
            ),
            (
                "name = \"s\"\n[[run]]\nscenario = \"a.toml\"\nprofiles = [\"naive\", \"naive\"]\n",
                "run[0].profiles",
                Some(4),
                "twice",
            ),
            (
                "name = \"s\"\n[[run]]\nscenario = \"a.toml\"\nseeds = 0\n",
                "run[0].seeds",
                Some(4),
                "1 to 100",
            ),
            (
                "name = \"s\"\nseeds = 101\n[[run]]\nscenario = \"a.toml\"\n",
                "seeds",
                Some(2),
                "1 to 100",
            ),
            (
                "name = \"s\"\n[[run]]\nscenario = \"**/a.toml\"\n",
                "run[0].scenario",
                Some(3),
                "**",
            ),
            (
                "name = \"s\"\n[[run]]\nscenario = \"[ab].toml\"\n",
                "run[0].scenario",
                Some(3),
                "wildcards",
            ),
            (
                "name = \"s\"\n[baseline]\ndir = \"x\"\n[[run]]\nscenario = \"a.toml\"\n",
                "baseline",
                Some(2),
                "threshold",
            ),
            (
                "name = \"s\"\n[baseline]\np99_ratio = 0.5\n[[run]]\nscenario = \"a.toml\"\n",
                "baseline.p99_ratio",
                Some(3),
                "at least 1",
            ),
            (
                "name = \"s\"\n[baseline]\nerror_share_delta = 2.0\n[[run]]\nscenario = \"a.toml\"\n",
                "baseline.error_share_delta",
                Some(3),
                "[0, 1]",
            ),
            (
                "name = \"s\"\n[baseline]\np99_ratio = 1.5\nthreshold = 3\n[[run]]\nscenario = \"a.toml\"\n",
                "baseline.threshold",
                Some(4),
                "unknown field",
            ),
            (
                "name = \"no spaces\"\n[[run]]\nscenario = \"a.toml\"\n",
                "name",
                Some(1),
                "letters",
            ),
        ];
        for (text, field, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_release_suite_keeps_its_baseline_and_thresholds() {
        let s = parse(
            "name = \"release\"\nseeds = 3\n[baseline]\ndir = \"reports/baseline\"\np99_ratio = 1.5\nerror_share_delta = 0.02\n[[run]]\nscenario = \"a.toml\"\nprofile = \"hardened\"\n",
        )
        .unwrap();
        let b = s.baseline.as_ref().unwrap();
        assert_eq!(b.dir.as_deref(), Some("reports/baseline"));
        assert_eq!(
            b.thresholds(),
            Thresholds {
                p99_ratio: Some(1.5),
                error_share_delta: Some(0.02),
                recovery_ratio: None
            }
        );
        assert_eq!(s.seeds, Some(3));
    }

    fn listing(dir: &str) -> Result<Vec<String>, String> {
        match dir {
            "" => Ok(vec!["mediconnect".into(), "smoke.toml".into()]),
            "mediconnect" => Ok(vec![
                "redis-kill.toml".into(),
                "booking-contention.toml".into(),
                ".hidden.toml".into(),
                "notes.md".into(),
            ]),
            d => Err(format!("{d}: no such directory")),
        }
    }

    #[test]
    fn rows_expand_globs_in_sorted_order_and_profiles_in_given_order() {
        let text = "name = \"nightly\"\nseeds = 2\n[[run]]\nscenario = \"mediconnect/*.toml\"\nprofiles = [\"naive\", \"hardened\"]\n[[run]]\nscenario = \"smoke.toml\"\nseeds = 5\n";
        let s = parse(text).unwrap();
        let rows = s.rows("s.toml", text, listing).unwrap();
        let got: Vec<(&str, Option<Profile>, u32)> = rows
            .iter()
            .map(|r| (r.scenario.as_str(), r.profile, r.seeds))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "mediconnect/booking-contention.toml",
                    Some(Profile::Naive),
                    2
                ),
                (
                    "mediconnect/booking-contention.toml",
                    Some(Profile::Hardened),
                    2
                ),
                ("mediconnect/redis-kill.toml", Some(Profile::Naive), 2),
                ("mediconnect/redis-kill.toml", Some(Profile::Hardened), 2),
                ("smoke.toml", None, 5),
            ]
        );
        assert_eq!(rows[4].run, 1);
    }

    #[test]
    fn a_glob_matching_nothing_and_a_repeated_row_are_errors_on_their_line() {
        let text = "name = \"s\"\n[[run]]\nscenario = \"mediconnect/*.tmol\"\n";
        let e = parse(text)
            .unwrap()
            .rows("s.toml", text, listing)
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("run[0].scenario", Some(3)));
        assert!(e.message.contains("matches no file"), "{e}");

        let text = "name = \"s\"\n[[run]]\nscenario = \"nowhere/*.toml\"\n";
        let e = parse(text)
            .unwrap()
            .rows("s.toml", text, listing)
            .unwrap_err();
        assert!(e.message.contains("no such directory"), "{e}");

        let text = "name = \"s\"\n[[run]]\nscenario = \"mediconnect/*.toml\"\nprofile = \"naive\"\n[[run]]\nscenario = \"mediconnect/redis-kill.toml\"\nprofile = \"naive\"\n";
        let e = parse(text)
            .unwrap()
            .rows("s.toml", text, listing)
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("run[1].scenario", Some(6)));
        assert!(e.message.contains("already a row (from run[0])"), "{e}");
    }

    #[test]
    fn glob_match_follows_the_shell_within_a_component() {
        for (p, n, m) in [
            ("*.toml", "a.toml", true),
            ("*.toml", "a.tomlx", false),
            ("*", ".hidden", false),
            (".*", ".hidden", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-kill.toml", "redis-kill.toml", true),
            ("*-kill*", "rabbitmq-kill-x.toml", true),
            ("r*s*", "redis", true),
            ("r*z", "redis", false),
            ("", "", true),
            ("**", "x", true),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} vs {n}");
        }
    }
}
