//! nftables in process, through libnftables (the library the `nft` command is a thin
//! shell around), so that a round does not pay for starting `nft` (and, with `--netns`,
//! `ip netns exec`): about 10 ms of a ~12 ms round at small deltas, the larger part of
//! policy propagation.
//!
//! - The library is opened at run time (`libnftables.so.1`, which the `nftables` package
//!   depends on), not linked: a host without it still runs, through the `nft` command.
//! - One thread owns the library's context and runs every command, in the agent's network
//!   namespace when it has one: a context and the netlink sockets it opens belong to the
//!   namespace of the thread that made them, and a context is not to be shared between
//!   threads at once.
//! - The context buffers output and errors, so an error reads as `nft`'s stderr would.
//! - Scripts are run as files, as `nft -f` runs them: from a buffer, nft 1.0.6 quotes the
//!   wrong line in its error ("syntax error" under the first line of the batch, not the
//!   bad one). The file is a memfd, rewritten for each script, named by its /proc path.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use nix::sched::{setns, CloneFlags};
use nix::sys::memfd::{memfd_create, MFdFlags};
use tokio::sync::oneshot;

use super::netns::netns_path;

const LIBRARY: &str = "libnftables.so.1";
/// `NFT_CTX_DEFAULT` and `NFT_CTX_OUTPUT_JSON` of `<nftables/libnftables.h>`.
const CTX_DEFAULT: c_uint = 0;
const OUTPUT_JSON: c_uint = 1 << 4;

type Ctx = *mut c_void;

/// The few functions of libnftables' stable API (symbol version LIBNFTABLES_1) we call.
struct Api {
    _library: libloading::Library,
    ctx_new: unsafe extern "C" fn(c_uint) -> Ctx,
    ctx_free: unsafe extern "C" fn(Ctx),
    output_set_flags: unsafe extern "C" fn(Ctx, c_uint),
    buffer_output: unsafe extern "C" fn(Ctx) -> c_int,
    buffer_error: unsafe extern "C" fn(Ctx) -> c_int,
    get_output_buffer: unsafe extern "C" fn(Ctx) -> *const c_char,
    get_error_buffer: unsafe extern "C" fn(Ctx) -> *const c_char,
    run_cmd_from_buffer: unsafe extern "C" fn(Ctx, *const c_char) -> c_int,
    run_cmd_from_filename: unsafe extern "C" fn(Ctx, *const c_char) -> c_int,
}

impl Api {
    fn open() -> Result<Api, String> {
        // SAFETY: loading libnftables runs no initialisers of consequence, and every symbol
        // is read with the C signature that libnftables.h declares for it.
        unsafe {
            let library = libloading::Library::new(LIBRARY).map_err(|e| e.to_string())?;
            macro_rules! sym {
                ($name:literal) => {
                    *library
                        .get(concat!($name, "\0").as_bytes())
                        .map_err(|e| format!("{}: {e}", $name))?
                };
            }
            Ok(Api {
                ctx_new: sym!("nft_ctx_new"),
                ctx_free: sym!("nft_ctx_free"),
                output_set_flags: sym!("nft_ctx_output_set_flags"),
                buffer_output: sym!("nft_ctx_buffer_output"),
                buffer_error: sym!("nft_ctx_buffer_error"),
                get_output_buffer: sym!("nft_ctx_get_output_buffer"),
                get_error_buffer: sym!("nft_ctx_get_error_buffer"),
                run_cmd_from_buffer: sym!("nft_run_cmd_from_buffer"),
                run_cmd_from_filename: sym!("nft_run_cmd_from_filename"),
                _library: library,
            })
        }
    }
}

/// What one command printed: as `nft`'s exit status, stdout and stderr.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub output: String,
    pub error: String,
}

/// What to run: a command (`list table ...`) or a script (`nft -f`).
enum Input {
    Command { text: String, json: bool },
    Script(String),
}

struct Job {
    input: Input,
    reply: oneshot::Sender<Ran>,
}

/// The thread that owns a libnftables context; dropped with the last [`Libnft`] handle.
#[derive(Clone)]
pub struct Libnft {
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for Libnft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Libnft")
    }
}

impl Libnft {
    /// Opens the library and starts its thread, in `netns` when given. `Err` says why the
    /// library cannot be used (missing, no context, namespace not there): the caller then
    /// runs the `nft` command instead.
    pub fn start(netns: Option<&str>) -> Result<Libnft, String> {
        let api = Api::open()?;
        let file = match netns {
            Some(name) => {
                let path = netns_path(name);
                Some(File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("libnftables".into())
            .spawn(move || {
                if let Some(file) = file {
                    if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
                        let _ = ready.send(Err(format!("setns: {e}")));
                        return;
                    }
                }
                // SAFETY: the context is made, used and freed on this thread only.
                let ctx = unsafe { (api.ctx_new)(CTX_DEFAULT) };
                if ctx.is_null() {
                    let _ = ready.send(Err("nft_ctx_new failed".into()));
                    return;
                }
                let buffered =
                    unsafe { (api.buffer_output)(ctx) == 0 && (api.buffer_error)(ctx) == 0 };
                if !buffered {
                    unsafe { (api.ctx_free)(ctx) };
                    let _ = ready.send(Err("cannot buffer libnftables output".into()));
                    return;
                }
                let script = match memfd_create("romana-nft", MFdFlags::MFD_CLOEXEC) {
                    Ok(fd) => File::from(fd),
                    Err(e) => {
                        unsafe { (api.ctx_free)(ctx) };
                        let _ = ready.send(Err(format!("memfd_create: {e}")));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                for job in queue {
                    let ran = match job.input {
                        Input::Command { text, json } => run(&api, ctx, &text, json, false),
                        Input::Script(text) => match rewrite(&script, &text) {
                            Ok(path) => run(&api, ctx, &path, false, true),
                            Err(e) => failed(format!("writing the script to a memfd: {e}")),
                        },
                    };
                    let _ = job.reply.send(ran);
                }
                unsafe { (api.ctx_free)(ctx) };
            })
            .map_err(|e| e.to_string())?;
        started
            .recv()
            .map_err(|_| "the libnftables thread ended before it started".to_string())??;
        Ok(Libnft { jobs })
    }

    /// Runs one command (`list table inet romana`), with JSON output when `json`.
    pub async fn command(&self, text: String, json: bool) -> Ran {
        self.send(Input::Command { text, json }).await
    }

    /// Runs a script as `nft -f` does: one batch, all of it or none of it.
    pub async fn script(&self, text: String) -> Ran {
        self.send(Input::Script(text)).await
    }

    async fn send(&self, input: Input) -> Ran {
        let (reply, answer) = oneshot::channel();
        let gone = || failed("the libnftables thread has ended".into());
        if self.jobs.send(Job { input, reply }).is_err() {
            return gone();
        }
        answer.await.unwrap_or_else(|_| gone())
    }
}

fn failed(error: String) -> Ran {
    Ran {
        ok: false,
        output: String::new(),
        error,
    }
}

/// Replaces the memfd's content with `text`; returns the path nft can open it by.
fn rewrite(file: &File, text: &str) -> std::io::Result<String> {
    file.set_len(0)?;
    file.write_all_at(text.as_bytes(), 0)?;
    Ok(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Runs `input`: a command, or the path of a script file when `is_file`.
fn run(api: &Api, ctx: Ctx, input: &str, json: bool, is_file: bool) -> Ran {
    let Ok(text) = CString::new(input) else {
        return failed("the command contains a NUL byte".into());
    };
    // SAFETY: `ctx` is this thread's live context; the buffers it returns stay valid until
    // the next command on it, and are copied out before that.
    unsafe {
        (api.output_set_flags)(ctx, if json { OUTPUT_JSON } else { 0 });
        let rc = if is_file {
            (api.run_cmd_from_filename)(ctx, text.as_ptr())
        } else {
            (api.run_cmd_from_buffer)(ctx, text.as_ptr())
        };
        let read = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Ran {
            ok: rc == 0,
            output: read((api.get_output_buffer)(ctx)),
            error: read((api.get_error_buffer)(ctx)),
        }
    }
}
