//! What a command can end with, and the exit code scripts see for it.

use std::fmt;

/// The exit codes scripts can rely on (listed in `jamstack --help` and
/// README.md); success is 0. Usage errors (2) also come from clap before a
/// command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Error = 1,
    Usage = 2,
    NotFound = 3,
    NotAuthorised = 4,
    BuildFailed = 5,
}

/// An error for the person at the terminal: what happened and what to do
/// next, with the exit code it ends the command with.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        CliError::new(Exit::Error, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(Exit::Usage, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::error(error.to_string())
    }
}

impl From<jamstack_deploy_files::ManifestError> for CliError {
    fn from(error: jamstack_deploy_files::ManifestError) -> Self {
        use jamstack_deploy_files::ManifestError;
        match error {
            // The runner's wording speaks of a build's output; here the
            // person named the folder.
            ManifestError::Empty => {
                CliError::usage("the folder has no files to deploy; give the folder your site was built into")
            }
            other => CliError::error(other.to_string()),
        }
    }
}

impl From<jamstack_deploy_files::upload::UploadError<CliError>> for CliError {
    fn from(error: jamstack_deploy_files::upload::UploadError<CliError>) -> Self {
        use jamstack_deploy_files::upload::UploadError;
        match error {
            UploadError::Controller(error) => error,
            other => CliError::error(other.to_string()),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// The exit code for an answer of the controller that is not a success.
pub fn exit_for_status(status: u16) -> Exit {
    match status {
        401 | 403 => Exit::NotAuthorised,
        404 => Exit::NotFound,
        _ => Exit::Error,
    }
}

/// What to do next after the controller refused a request, added to its
/// own message (a 403 names the missing scope and how to get it already).
pub fn next_step_for_status(status: u16) -> Option<&'static str> {
    match status {
        401 => Some(
            "log in again with `jamstack login` (or set JAMSTACK_TOKEN) using the admin token or an API token",
        ),
        500..=599 => Some("the controller's log has the details"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_the_documented_exit_codes() {
        assert_eq!(exit_for_status(401), Exit::NotAuthorised);
        assert_eq!(exit_for_status(403), Exit::NotAuthorised);
        assert_eq!(exit_for_status(404), Exit::NotFound);
        assert_eq!(exit_for_status(409), Exit::Error);
        assert_eq!(exit_for_status(400), Exit::Error);
        assert_eq!(exit_for_status(500), Exit::Error);
        assert_eq!(Exit::BuildFailed as i32, 5);
    }
}
