//! `--watch`: print a listing, then print it again each time the service's watch stream
//! sends a new one (the services' Watch* RPCs, driven by their etcd watches: nothing here
//! polls).
//!
//! Each listing is one frame: for tables a `--- <UTC time>` line and the table; for `-o
//! json` one compact JSON document per line (the same array or object as without
//! `--watch`); for `-o yaml` a `---` separated YAML document. A listing equal to the last one
//! printed (as after a reconnect) is not printed again.
//!
//! A stream that is lost after the first listing (the instance stops, etcd's watch breaks)
//! is opened again through discovery, so another replica takes over; each attempt says so in
//! one line on stderr. Before the first listing every failure is the command's error, as
//! for any other command; so is a refusal (PERMISSION_DENIED, INVALID_ARGUMENT, ...) at any
//! time.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tonic::{Code, Status, Streaming};

use crate::cmd::Ctx;
use crate::{Error, Format};

/// The first pause before reconnecting, doubled per failed attempt up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// One kind of watch: which stream to open and how its listings look.
pub(crate) trait Watch {
    type Message;
    type View: Serialize + PartialEq;
    /// Opens the stream; called again, with discovery again, after a loss.
    async fn open(&self, ctx: &Ctx) -> Result<Streaming<Self::Message>, Error>;
    fn view(&self, message: Self::Message) -> Self::View;
    /// The table form, at Unix time `now` (for ages).
    fn table(&self, view: &Self::View, now: u64) -> String;
}

/// Follows `watch` until stdout closes or a failure that reconnecting cannot mend; the
/// caller ends it on a signal.
pub(crate) async fn follow<W: Watch>(
    watch: &W,
    ctx: &Ctx,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<(), Error> {
    let mut last: Option<W::View> = None;
    let mut pause = FIRST_PAUSE;
    let mut lost = false;
    loop {
        let why = match watch.open(ctx).await {
            Err(e) if last.is_none() => return Err(e),
            Err(e) => e.line(),
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        pause = FIRST_PAUSE;
                        lost = false;
                        let view = watch.view(message);
                        if last.as_ref() == Some(&view) {
                            continue;
                        }
                        let text = frame(watch, &view, ctx.format, unix_now())?;
                        if out
                            .write_all(text.as_bytes())
                            .and_then(|()| out.flush())
                            .is_err()
                        {
                            // A closed pipe (`| head`) ends the watch, as it ends a list.
                            return Ok(());
                        }
                        last = Some(view);
                    }
                    Ok(None) if last.is_none() => {
                        let ended = "the service ended the watch before its first listing";
                        return Err(Status::unavailable(ended).into());
                    }
                    Ok(None) => break "the service ended the stream".to_string(),
                    Err(status) if last.is_none() || fatal(&status) => return Err(status.into()),
                    Err(status) => break Error::from(status).line(),
                }
            },
        };
        let what = if lost {
            "reconnecting failed"
        } else {
            "watch stream lost"
        };
        let _ = writeln!(
            notes,
            "warning: {what} ({why}); reconnecting in {} ms",
            pause.as_millis()
        );
        lost = true;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Refusals and bugs, which another attempt would only repeat.
fn fatal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::NotFound
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::Internal
            | Code::DataLoss
    )
}

/// One listing as printed (see the module docs).
fn frame<W: Watch>(watch: &W, view: &W::View, format: Format, now: u64) -> Result<String, Error> {
    let encode = |format: &'static str, e: String| Error::Encode { format, reason: e };
    match format {
        Format::Table => Ok(format!("--- {}\n{}", rfc3339(now), watch.table(view, now))),
        Format::Json => serde_json::to_string(view)
            .map(|line| line + "\n")
            .map_err(|e| encode("json", e.to_string())),
        Format::Yaml => serde_norway::to_string(view)
            .map(|doc| format!("---\n{doc}"))
            .map_err(|e| encode("yaml", e.to_string())),
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-12-02T14:47:03Z` for Unix seconds (the proleptic Gregorian calendar, UTC).
fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Numbers;

    impl Watch for Numbers {
        type Message = ();
        type View = Vec<u32>;
        async fn open(&self, _: &Ctx) -> Result<Streaming<()>, Error> {
            unreachable!("frames only")
        }
        fn view(&self, (): ()) -> Vec<u32> {
            vec![]
        }
        fn table(&self, view: &Vec<u32>, now: u64) -> String {
            format!("N\n{view:?} at {now}\n")
        }
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_814_823), "2027-01-01T14:47:03Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn frames_are_a_timestamped_table_a_json_line_or_a_yaml_document() {
        let view = vec![1, 2];
        assert_eq!(
            frame(&Numbers, &view, Format::Table, 0).unwrap(),
            "--- 1970-01-01T00:00:00Z\nN\n[1, 2] at 0\n"
        );
        assert_eq!(frame(&Numbers, &view, Format::Json, 0).unwrap(), "[1,2]\n");
        assert_eq!(
            frame(&Numbers, &view, Format::Yaml, 0).unwrap(),
            "---\n- 1\n- 2\n"
        );
    }

    #[test]
    fn refusals_are_fatal_and_outages_are_not() {
        assert!(fatal(&Status::permission_denied("no")));
        assert!(fatal(&Status::invalid_argument("bad")));
        assert!(!fatal(&Status::unavailable("shutting down")));
        assert!(!fatal(&Status::unknown("h2 protocol error")));
        assert!(!fatal(&Status::cancelled("")));
    }
}
