//! `romanactl context list|use|add|remove`: the contexts file ([`crate::contexts`]). Local
//! commands: no service is called.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use tabled::Tabled;

use crate::contexts::{split_roots, Context, ContextsError, ContextsFile};
use crate::output;
use crate::settings::Given;
use crate::{Error, Format};

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Lists the contexts; the current one is marked with *.
    List,
    /// Makes NAME the current context.
    Use(Name),
    /// Adds context NAME with the settings given by --root and --tls-ca/--tls-cert/--tls-key
    /// (flags or their environment variables); the first context added becomes current.
    Add(Name),
    /// Removes context NAME; when it was current, no context is current afterwards.
    Remove(Name),
}

#[derive(Debug, Args)]
pub struct Name {
    pub name: String,
}

/// One context as `context list` shows it. Paths are as the file has them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct ContextView {
    pub name: String,
    /// First in the table, marked `*`.
    #[tabled(order = 0, display = "current_cell")]
    pub current: bool,
    #[tabled(display = "roots_cell")]
    pub root: Vec<String>,
    #[tabled(rename = "TLS-CA", display = "path_cell")]
    pub tls_ca: Option<PathBuf>,
    #[tabled(rename = "TLS-CERT", display = "path_cell")]
    pub tls_cert: Option<PathBuf>,
    #[tabled(skip)]
    pub tls_key: Option<PathBuf>,
    #[tabled(display = "output_cell")]
    pub output: Option<Format>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The current context after the change; null for none.
    pub current_context: Option<String>,
    pub contexts: Vec<String>,
}

fn current_cell(current: &bool) -> String {
    if *current { "*" } else { "" }.to_string()
}

fn roots_cell(roots: &[String]) -> String {
    roots.join(",")
}

fn path_cell(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(|| "<none>".to_string(), |p| p.display().to_string())
}

fn output_cell(format: &Option<Format>) -> String {
    format.map_or_else(|| "<none>".to_string(), |f| format!("{f:?}").to_lowercase())
}

// === impl ContextCommand ===

impl ContextCommand {
    /// Runs against the file at `path` (`None`: there is nowhere to look). `given` carries
    /// the flags `add` saves and the `-o` of the answer.
    pub fn apply(
        self,
        path: Option<&Path>,
        given: &Given,
        format: Format,
    ) -> Result<String, Error> {
        let path = path.ok_or(ContextsError::NoPath)?;
        let mut file = ContextsFile::load(path)?.unwrap_or_default();
        let text = match self {
            ContextCommand::List => {
                let views: Vec<ContextView> = file
                    .contexts
                    .iter()
                    .map(|c| ContextView {
                        current: file.current_context.as_deref() == Some(c.name.as_str()),
                        name: c.name.clone(),
                        root: c.root.clone(),
                        tls_ca: c.tls_ca.clone(),
                        tls_cert: c.tls_cert.clone(),
                        tls_key: c.tls_key.clone(),
                        output: c.output,
                    })
                    .collect();
                return output::list(&views, format);
            }
            ContextCommand::Use(Name { name }) => {
                file.find(path, &name)?;
                file.current_context = Some(name.clone());
                format!("switched to context {name:?}")
            }
            ContextCommand::Add(Name { name }) => {
                if file.get(&name).is_some() {
                    return Err(ContextsError::Exists {
                        path: path.to_path_buf(),
                        name,
                    }
                    .into());
                }
                file.contexts.push(new_context(&name, given)?);
                let mut text = format!("added context {name:?}");
                if file.current_context.is_none() {
                    file.current_context = Some(name.clone());
                    text.push_str(", now the current context");
                }
                text
            }
            ContextCommand::Remove(Name { name }) => {
                file.find(path, &name)?;
                file.contexts.retain(|c| c.name != name);
                let mut text = format!("removed context {name:?}");
                if file.current_context.as_deref() == Some(name.as_str()) {
                    file.current_context = None;
                    text.push_str("; no context is current now");
                }
                text
            }
        };
        // What is written must read back: a name or URL that breaks the file is refused here
        // rather than leaving a file every later command fails on.
        let written = serde_norway::to_string(&file).unwrap_or_default();
        ContextsFile::parse(path, &written)?;
        file.save(path)?;
        let changed = Changed {
            current_context: file.current_context.clone(),
            contexts: file.names(),
        };
        output::message(&text, &changed, format)
    }
}

/// A context from the given settings; TLS paths are made absolute, since the file resolves
/// relative ones against its own directory, not the directory this ran in.
fn new_context(name: &str, given: &Given) -> Result<Context, Error> {
    let root = given.root.as_deref().map(split_roots).unwrap_or_default();
    if root.is_empty() {
        return Err(Error::Usage(format!(
            "context add {name} needs --root URL[,URL...] (or ROMANA_ROOT)"
        )));
    }
    if given.tls_cert.is_some() != given.tls_key.is_some() {
        return Err(Error::Usage(
            "--tls-cert and --tls-key go together; give both or neither".into(),
        ));
    }
    let absolute = |p: &Option<PathBuf>| -> Result<Option<PathBuf>, Error> {
        p.as_deref()
            .map(|p| {
                std::path::absolute(p).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
            })
            .transpose()
    };
    Ok(Context {
        name: name.to_string(),
        root,
        tls_ca: absolute(&given.tls_ca)?,
        tls_cert: absolute(&given.tls_cert)?,
        tls_key: absolute(&given.tls_key)?,
        output: None,
    })
}
