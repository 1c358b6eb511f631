//! romanactl: the command-line client of romana-rs, shaped like kubectl. It knows only
//! root's URL and finds every other service through root's registry
//! ([`romana_proto::discover`]). Every command prints a table for people or stable JSON/YAML
//! for scripts; every failure is one line on stderr and exit code 1.
//!
//! # Layout
//! - [`certs`]: a development CA and identity/server certificates (`romanactl certs`).
//! - [`cmd`]: the command tree ([`Cli`]), one module per verb group as in mini-redis
//!   `cmd/`; each command's `apply` makes the calls and returns what to print.
//! - [`etcd_auth`]: etcd users and roles for services and hosts (`romanactl etcd-auth`).
//! - [`view`]: what is shown: serde structs with stable snake_case fields, built from the
//!   wire types, so that `-o json` does not change when the proto grows.
//! - [`output`]: how it is shown: aligned tables, JSON, YAML.
//! - [`contexts`]: the contexts file (`~/.config/romanactl/config.yaml`), and
//!   [`settings`]: flags, then environment, then context, then defaults.
//! - [`flags`]: strict parsers for `KEY=VALUE` labels and `NAME=PROTO/NUMBER` ports.
//! - [`error`]: [`Error`], and the one line a failure prints.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cmd;
pub mod contexts;
pub mod error;
pub mod etcd_auth;
pub mod flags;
pub mod output;
pub mod settings;
pub mod view;

pub use cmd::Cli;
pub use error::Error;
pub use output::Format;

/// Runs one parsed command line and returns what to print on stdout.
pub async fn run(cli: Cli) -> Result<String, Error> {
    // Local commands: TLS settings (from the environment, say) and contexts are not theirs to
    // check, so a broken contexts file does not break completion.
    let cli = match cli.command {
        cmd::Command::Certs(c) => return c.apply(),
        cmd::Command::EtcdAuth(c) => return c.apply().await,
        cmd::Command::Completion(c) => return c.apply(),
        command => Cli { command, ..cli },
    };
    let given = settings::Given {
        root: cli.root,
        output: cli.output,
        tls_ca: cli.tls_ca,
        tls_cert: cli.tls_cert,
        tls_key: cli.tls_key,
        context: cli.context,
    };
    let found = settings::Found::load(cli.config.or_else(contexts::default_path))?;
    if let cmd::Command::Context(c) = cli.command {
        // The answer's -o may come from the current context, like any read's; a current
        // context that is gone must not stop `context use` from repairing it.
        let format = settings::Settings::resolve(given.clone(), &found)
            .map(|s| s.format)
            .unwrap_or(given.output.unwrap_or_default());
        return c.apply(found.path.as_deref(), &given, format);
    }
    let settings = settings::Settings::resolve(given, &found)?;
    let tls = romana_proto::discover::ClientTls::from_files(
        settings.tls_ca.as_deref(),
        settings.tls_cert.as_deref(),
        settings.tls_key.as_deref(),
    )
    .map_err(Error::Tls)?;
    let ctx = cmd::Ctx {
        tls,
        root: settings.root,
        format: settings.format,
        timeouts: romana_proto::discover::Timeouts {
            request: std::time::Duration::from_secs(cli.timeout),
            ..Default::default()
        },
    };
    cli.command.apply(&ctx).await
}
