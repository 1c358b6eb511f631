//! Where a command's connection settings come from, field by field: flags, then the
//! environment (clap has merged those two into [`Given`]), then the context, then the
//! built-in default. See [`crate::contexts`] for the file.

use std::path::{Path, PathBuf};

use crate::cmd::DEFAULT_ROOT;
use crate::contexts::{Context, ContextsError, ContextsFile};
use crate::{Error, Format};

/// What the command line and environment said; `None` for what neither did.
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub root: Option<String>,
    pub output: Option<Format>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `--context NAME`: this context for this call instead of the current one.
    pub context: Option<String>,
}

/// What a command uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub root: String,
    pub format: Format,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The context used, if any (for messages).
    pub context: Option<String>,
}

/// The contexts file as found: its path (if there can be one) and contents (if it exists).
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub path: Option<PathBuf>,
    pub file: Option<ContextsFile>,
}

// === impl Found ===

impl Found {
    /// Reads the file at `path` (`--config`/env, else the default place).
    pub fn load(path: Option<PathBuf>) -> Result<Found, ContextsError> {
        let file = match &path {
            Some(p) => ContextsFile::load(p)?,
            None => None,
        };
        Ok(Found { path, file })
    }

    /// The context to use: `--context NAME`'s, else the current one, else none.
    fn context(&self, asked: Option<&str>) -> Result<Option<(&Path, &Context)>, ContextsError> {
        let Some(path) = self.path.as_deref() else {
            return match asked {
                Some(_) => Err(ContextsError::NoPath),
                None => Ok(None),
            };
        };
        // No file is a file without contexts: `--context NAME` is then an unknown name.
        static EMPTY: ContextsFile = ContextsFile {
            current_context: None,
            contexts: Vec::new(),
        };
        let file = self.file.as_ref().unwrap_or(&EMPTY);
        match (asked, file.current_context.as_deref()) {
            (Some(name), _) => file.find(path, name).map(|c| Some((path, c))),
            (None, Some(name)) => match file.get(name) {
                Some(c) => Ok(Some((path, c))),
                None => Err(ContextsError::CurrentUnknown {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    known: file.names(),
                }),
            },
            (None, None) => Ok(None),
        }
    }
}

// === impl Settings ===

impl Settings {
    pub fn resolve(given: Given, found: &Found) -> Result<Settings, Error> {
        let context = found.context(given.context.as_deref())?;
        let from_file = |pick: fn(&Context) -> &Option<PathBuf>| {
            context.and_then(|(path, c)| pick(c).as_deref().map(|p| Context::resolve(path, p)))
        };
        // A certificate and its key come from one place: either given, or the context's.
        let (tls_cert, tls_key) = if given.tls_cert.is_some() || given.tls_key.is_some() {
            (given.tls_cert, given.tls_key)
        } else {
            (from_file(|c| &c.tls_cert), from_file(|c| &c.tls_key))
        };
        match (&tls_cert, &tls_key) {
            (Some(_), None) => return Err(Error::Usage("--tls-cert needs --tls-key".into())),
            (None, Some(_)) => return Err(Error::Usage("--tls-key needs --tls-cert".into())),
            _ => {}
        }
        Ok(Settings {
            root: given
                .root
                .or_else(|| context.map(|(_, c)| c.root.join(",")))
                .unwrap_or_else(|| DEFAULT_ROOT.to_string()),
            format: given
                .output
                .or_else(|| context.and_then(|(_, c)| c.output))
                .unwrap_or_default(),
            tls_ca: given.tls_ca.or_else(|| from_file(|c| &c.tls_ca)),
            tls_cert,
            tls_key,
            context: context.map(|(_, c)| c.name.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_found(text: &str) -> Found {
        let path = PathBuf::from("/home/u/.config/romanactl/config.yaml");
        Found {
            file: Some(ContextsFile::parse(&path, text).unwrap()),
            path: Some(path),
        }
    }

    const TWO: &str = "current-context: prod\n\
        contexts:\n\
        - name: prod\n  root: [https://p1:9600, https://p2:9600]\n  tls-ca: pki/ca.pem\n  \
          tls-cert: /abs/admin.pem\n  tls-key: /abs/admin-key.pem\n  output: yaml\n\
        - name: lab\n  root: http://127.0.0.1:9600\n";

    #[test]
    fn the_current_context_fills_what_was_not_given() {
        let s = Settings::resolve(Given::default(), &mk_found(TWO)).unwrap();
        assert_eq!(s.root, "https://p1:9600,https://p2:9600");
        assert_eq!(s.format, Format::Yaml);
        assert_eq!(
            s.tls_ca.as_deref(),
            Some(Path::new("/home/u/.config/romanactl/pki/ca.pem"))
        );
        assert_eq!(s.tls_cert.as_deref(), Some(Path::new("/abs/admin.pem")));
        assert_eq!(s.context.as_deref(), Some("prod"));
    }

    #[test]
    fn flags_and_env_win_field_by_field() {
        let given = Given {
            root: Some("http://other:1".into()),
            output: Some(Format::Json),
            ..Given::default()
        };
        let s = Settings::resolve(given, &mk_found(TWO)).unwrap();
        assert_eq!(s.root, "http://other:1");
        assert_eq!(s.format, Format::Json);
        // Not given: still the context's.
        assert!(s.tls_ca.is_some() && s.tls_cert.is_some());
    }

    #[test]
    fn a_given_certificate_never_pairs_with_the_contexts_key() {
        let given = Given {
            tls_cert: Some("mine.pem".into()),
            ..Given::default()
        };
        let err = Settings::resolve(given, &mk_found(TWO)).unwrap_err();
        assert_eq!(err.line(), "--tls-cert needs --tls-key");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn context_flag_picks_another_context_for_one_call() {
        let given = Given {
            context: Some("lab".into()),
            ..Given::default()
        };
        let s = Settings::resolve(given, &mk_found(TWO)).unwrap();
        assert_eq!(s.root, "http://127.0.0.1:9600");
        assert_eq!(
            (s.format, s.tls_ca, s.tls_cert),
            (Format::Table, None, None)
        );
        let given = Given {
            context: Some("nope".into()),
            ..Given::default()
        };
        let err = Settings::resolve(given, &mk_found(TWO)).unwrap_err();
        assert!(
            err.line().starts_with("no context \"nope\" in "),
            "{}",
            err.line()
        );
    }

    #[test]
    fn no_file_is_the_built_in_default_and_a_dangling_current_is_an_error() {
        let s = Settings::resolve(Given::default(), &Found::default()).unwrap();
        assert_eq!(s.root, DEFAULT_ROOT);
        let err =
            Settings::resolve(Given::default(), &mk_found("current-context: gone\n")).unwrap_err();
        assert!(
            err.line().starts_with("current-context \"gone\" of "),
            "{}",
            err.line()
        );
    }
}
