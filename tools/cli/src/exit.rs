//! The exit codes every command shares: 0 done and good, 1 a failed outcome or an error, 2 a usage error
//! (clap's own), 3 no answer within the wait.

use std::process::ExitCode;

/// The awaited answer did not come within `--wait`'s time: the work may still finish.
pub fn timed_out() -> ExitCode {
    ExitCode::from(3)
}
