//! Progress on stderr for work that can pass a second. The one such command is `ipam list`
//! of a large cluster (a ListEndpoints call per 500 endpoints); every other command is one
//! or a few calls, bounded by `--timeout`, and `--watch` reports on its own. Shown only when
//! stderr is a terminal and only after a second, and erased before the output, so scripts
//! and quick runs never see it and errors stay one line.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How long work runs before progress appears.
const AFTER: Duration = Duration::from_secs(1);

pub struct Progress {
    what: &'static str,
    started: Instant,
    enabled: bool,
    shown: bool,
}

impl Progress {
    /// Progress of reading `what` (e.g. "endpoints").
    pub fn new(what: &'static str) -> Progress {
        Progress {
            what,
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// `done` items so far.
    pub fn update(&mut self, done: usize) {
        if self.enabled && self.started.elapsed() >= AFTER {
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r\x1b[K{}",
                line(self.what, done, self.started.elapsed())
            );
            let _ = err.flush();
            self.shown = true;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.shown {
            // Erase the line: what follows (output or the error line) starts clean.
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// `reading endpoints: 12500 so far (3 s)`.
fn line(what: &str, done: usize, elapsed: Duration) -> String {
    format!("reading {what}: {done} so far ({} s)", elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_says_what_how_many_and_how_long() {
        assert_eq!(
            line("endpoints", 12_500, Duration::from_millis(3_400)),
            "reading endpoints: 12500 so far (3 s)"
        );
    }

    #[test]
    fn nothing_is_shown_before_a_second_or_off_a_terminal() {
        let mut p = Progress::new("endpoints");
        p.enabled = true;
        p.update(10);
        assert!(!p.shown, "under a second");
        let mut p = Progress::new("endpoints");
        p.enabled = false;
        p.started -= Duration::from_secs(5);
        p.update(10);
        assert!(!p.shown, "not a terminal");
    }
}
