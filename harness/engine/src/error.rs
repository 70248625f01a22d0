//! The engine's error type: why an environment or a run could not go ahead.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A service did not start or did not become ready in time; carries its log's tail.
    #[error("{service} did not start: {reason}\n--- last lines of {log} ---\n{tail}")]
    ServiceStart {
        service: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a required program is missing: {0}")]
    MissingProgram(String),
    /// An image the docker environment needs is not on the engine (it is never pulled).
    #[error("image {image} is not on this machine's Docker engine: {hint}")]
    MissingImage { image: String, hint: String },
    /// The Docker engine refused or could not do what the docker environment asked.
    #[error("docker: {0}")]
    Docker(String),
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("the run exceeded its global timeout of {0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let what = what.into();
        move |source| EngineError::Io { what, source }
    }
}
