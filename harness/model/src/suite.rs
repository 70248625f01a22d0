//! Suites: a named list of scenario runs (each scenario on a profile), e.g. `smoke`.

use serde::{Deserialize, Serialize};

use crate::locate;
use crate::scenario::{Profile, ScenarioError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "run")]
    pub runs: Vec<SuiteRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteRun {
    /// Path of the scenario file, relative to the suite file.
    pub scenario: String,
    /// Overrides the scenario's profile.
    #[serde(default)]
    pub profile: Option<Profile>,
}

impl Suite {
    pub fn parse(file: &str, text: &str) -> Result<Suite, ScenarioError> {
        let suite: Suite = locate::from_toml(file, text)?;
        if suite.runs.is_empty() {
            return Err(locate::field_error(
                file,
                text,
                "run".into(),
                "a suite lists at least one [[run]]".into(),
            ));
        }
        Ok(suite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runs_and_rejects_an_empty_suite() {
        let s = Suite::parse(
            "s.toml",
            "name = \"smoke\"\n[[run]]\nscenario = \"a.toml\"\nprofile = \"naive\"\n",
        )
        .unwrap();
        assert_eq!(s.runs[0].profile, Some(Profile::Naive));
        let e = Suite::parse("s.toml", "name = \"smoke\"\nrun = []\n").unwrap_err();
        assert_eq!(e.field, "run");
        let e = Suite::parse(
            "s.toml",
            "name = \"smoke\"\n[[run]]\nscenario = \"a.toml\"\nprofle = \"x\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }
}
