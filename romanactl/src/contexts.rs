//! The contexts file, kubectl's kubeconfig in small: named sets of connection settings (root
//! URLs, TLS files, a default output format) and which one is current.
//!
//! ```yaml
//! current-context: prod
//! contexts:
//!   - name: prod
//!     root: [https://r1.example:9600, https://r2.example:9600]   # or "URL,URL"
//!     tls-ca: pki/ca.pem               # relative paths are relative to this file
//!     tls-cert: pki/admin.pem
//!     tls-key: pki/admin-key.pem
//!     output: json                     # optional: the default of -o
//!   - name: lab
//!     root: http://127.0.0.1:9600
//! ```
//!
//! The file is `--config FILE`, else `$ROMANACTL_CONFIG`, else
//! `$XDG_CONFIG_HOME/romanactl/config.yaml`, else `~/.config/romanactl/config.yaml`. A
//! missing file is no contexts at all. What a command uses is, field by field: its flags,
//! then the environment (`ROMANA_ROOT`, `ROMANA_TLS_*`), then the context (`--context NAME`
//! or the current one), then the built-in default. A client certificate and its key always
//! come from the same place, so a key from one source never pairs with another's certificate.
//!
//! Writes (`context use|add|remove`) replace the file atomically (a temporary file in the
//! same directory, then a rename) and keep its mode; a file created here is 0600, as it names
//! private keys. Comments in the file are not kept by a write.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Format;

/// Larger than any real contexts file; a bigger one is refused before the parser sees it.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContextsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Context {
    pub name: String,
    /// Tried in turn, as `--root URL,URL`.
    #[serde(deserialize_with = "roots")]
    pub root: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Format>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {size} bytes is over the limit of {MAX_FILE_BYTES} for a contexts file", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    /// Not YAML, or not the shape above; `line` when the parser knows it.
    #[error("{}{}: {message}", .path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Malformed {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("no context {name:?} in {}{}", .path.display(), known_text(.known))]
    Unknown {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    #[error("current-context {name:?} of {} is not one of its contexts{}; pick one with `romanactl context use NAME`", .path.display(), known_text(.known))]
    CurrentUnknown {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    /// `--context NAME` or a write, with no file to read or write.
    #[error(
        "no contexts file: neither --config, $ROMANACTL_CONFIG, $XDG_CONFIG_HOME nor $HOME is set"
    )]
    NoPath,
    #[error("context {name:?} already exists in {}; remove it first", .path.display())]
    Exists { path: PathBuf, name: String },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn known_text(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no contexts; add one with `romanactl context add NAME --root URL`)".into()
    } else {
        format!(" (contexts: {})", known.join(", "))
    }
}

/// Where the file is when no `--config`/`$ROMANACTL_CONFIG` names one; `None` without a home.
pub fn default_path() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        // The XDG spec: a relative value is invalid and to be ignored.
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config_home.join("romanactl").join("config.yaml"))
}

// === impl ContextsFile ===

impl ContextsFile {
    /// The file at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<ContextsFile>, ContextsError> {
        let read = |source| ContextsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read(e)),
        };
        if size > MAX_FILE_BYTES {
            return Err(ContextsError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        ContextsFile::parse(path, &text).map(Some)
    }

    /// `text` as read from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<ContextsFile, ContextsError> {
        let blank = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            return Ok(ContextsFile::default());
        }
        let file: ContextsFile = serde_norway::from_str(text).map_err(|e| {
            let location = e.location();
            let mut message = e.to_string();
            if let Some(at) = &location {
                // The line goes in front, as compilers put it; not twice.
                message = message.replace(
                    &format!(" at line {} column {}", at.line(), at.column()),
                    "",
                );
            }
            ContextsError::Malformed {
                path: path.to_path_buf(),
                line: location.map(|l| l.line()),
                message,
            }
        })?;
        file.check(path, text)?;
        Ok(file)
    }

    /// What serde cannot check: unique names, a root, a key with each certificate.
    fn check(&self, path: &Path, text: &str) -> Result<(), ContextsError> {
        let malformed = |name: &str, nth: usize, message: String| ContextsError::Malformed {
            path: path.to_path_buf(),
            line: line_of_name(text, name, nth),
            message,
        };
        for (i, c) in self.contexts.iter().enumerate() {
            let earlier = self.contexts[..i]
                .iter()
                .filter(|o| o.name == c.name)
                .count();
            if c.name.trim().is_empty() {
                return Err(malformed(&c.name, 0, "a context has an empty name".into()));
            }
            if earlier > 0 {
                let message = format!("context {:?} is defined more than once", c.name);
                return Err(malformed(&c.name, earlier, message));
            }
            if c.root.is_empty() {
                let message = format!("context {:?}: root is empty", c.name);
                return Err(malformed(&c.name, 0, message));
            }
            if c.tls_cert.is_some() != c.tls_key.is_some() {
                let message = format!(
                    "context {:?}: tls-cert and tls-key go together; give both or neither",
                    c.name
                );
                return Err(malformed(&c.name, 0, message));
            }
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<String> {
        self.contexts.iter().map(|c| c.name.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context named `name`, or an error listing the ones there are.
    pub fn find(&self, path: &Path, name: &str) -> Result<&Context, ContextsError> {
        self.get(name).ok_or_else(|| ContextsError::Unknown {
            path: path.to_path_buf(),
            name: name.to_string(),
            known: self.names(),
        })
    }

    /// Writes the file in place of `path` (see the module docs).
    pub fn save(&self, path: &Path) -> Result<(), ContextsError> {
        // A symlinked file (dotfiles) is written where it points, not replaced by a file.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let write = |source| ContextsError::Write {
            path: target.clone(),
            source,
        };
        let text = serde_norway::to_string(self).map_err(|e| {
            write(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ))
        })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(write)?;
        let mode = match std::fs::metadata(&target) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => 0o600,
        };
        let file_name = target.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            // The umask may have taken bits off; the file keeps exactly the mode it had.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(write(e));
        }
        Ok(())
    }
}

// === impl Context ===

impl Context {
    /// `path` resolved against the directory of the file it was read from, as kubectl does.
    pub fn resolve(file: &Path, path: &Path) -> PathBuf {
        match file.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// The 1-based line of the `nth` (0-based) `name: NAME` in `text`, if it can be found.
fn line_of_name(text: &str, name: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            line.strip_prefix("name:").is_some_and(|v| {
                let v = v.split(" #").next().unwrap_or("").trim();
                v.trim_matches(['"', '\'']) == name
            })
        })
        .nth(nth)
        .map(|(i, _)| i + 1)
}

/// `root: URL`, `root: "URL,URL"` or `root: [URL, URL]`.
fn roots<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Roots;
    impl<'de> serde::de::Visitor<'de> for Roots {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a URL, URLs separated by commas, or a list of URLs")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(split_roots(v))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(url) = seq.next_element::<String>()? {
                out.extend(split_roots(&url));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Roots)
}

/// `a, b,` as `["a", "b"]`.
pub fn split_roots(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ContextsFile, String> {
        ContextsFile::parse(Path::new("/c/config.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn root_is_a_url_a_comma_list_or_a_yaml_list() {
        let file = parse(
            "current-context: b\n\
             contexts:\n\
             - name: a\n  root: http://a:1\n\
             - name: b\n  root: \"http://b:1, http://b:2\"\n  output: json\n\
             - name: c\n  root: [http://c:1, http://c:2]\n  tls-ca: pki/ca.pem\n",
        )
        .unwrap();
        assert_eq!(file.current_context.as_deref(), Some("b"));
        assert_eq!(file.contexts[0].root, ["http://a:1"]);
        assert_eq!(file.contexts[1].root, ["http://b:1", "http://b:2"]);
        assert_eq!(file.contexts[1].output, Some(Format::Json));
        assert_eq!(file.contexts[2].root, ["http://c:1", "http://c:2"]);
        let ca = file.contexts[2].tls_ca.as_deref().unwrap();
        assert_eq!(
            Context::resolve(Path::new("/c/config.yaml"), ca),
            Path::new("/c/pki/ca.pem")
        );
    }

    #[test]
    fn empty_or_comment_only_file_has_no_contexts() {
        assert_eq!(parse("").unwrap(), ContextsFile::default());
        assert_eq!(parse("# nothing yet\n\n").unwrap(), ContextsFile::default());
    }

    #[test]
    fn malformed_files_name_the_file_and_line() {
        let err = parse("contexts:\n- name: a\n  rot: http://a:1\n").unwrap_err();
        assert!(err.starts_with("/c/config.yaml:3: "), "{err}");
        assert!(err.contains("unknown field `rot`"), "{err}");
        let err = parse("contexts:\n  - name: a\n   root: [\n").unwrap_err();
        assert!(err.starts_with("/c/config.yaml:"), "{err}");
        let err = parse("contexts:\n- name: a\n  root: x\n  output: xml\n").unwrap_err();
        assert!(err.starts_with("/c/config.yaml:4: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn checks_serde_cannot_make_name_the_line_of_the_context() {
        let dup = "contexts:\n- name: a\n  root: x\n- name: a\n  root: y\n";
        assert_eq!(
            parse(dup).unwrap_err(),
            "/c/config.yaml:4: context \"a\" is defined more than once"
        );
        let half = "contexts:\n- name: a\n  root: x\n  tls-cert: c.pem\n";
        assert!(parse(half)
            .unwrap_err()
            .starts_with("/c/config.yaml:2: context \"a\": tls-cert and tls-key go together"));
        let empty = "contexts:\n- name: a\n  root: \" , \"\n";
        assert_eq!(
            parse(empty).unwrap_err(),
            "/c/config.yaml:2: context \"a\": root is empty"
        );
    }

    #[test]
    fn unknown_context_lists_the_known_ones() {
        let file = parse("contexts:\n- name: a\n  root: x\n- name: b\n  root: y\n").unwrap();
        let err = file.find(Path::new("/c/config.yaml"), "z").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no context \"z\" in /c/config.yaml (contexts: a, b)"
        );
    }

    #[test]
    fn save_then_load_round_trips_creating_0600_and_keeping_a_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yaml");
        let file = parse("current-context: a\ncontexts:\n- name: a\n  root: [x, y]\n").unwrap();
        file.save(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(ContextsFile::load(&path).unwrap(), Some(file.clone()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        file.save(&path).unwrap();
        assert_eq!(mode(&path), 0o640);
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ContextsFile::load(&dir.path().join("none.yaml")).unwrap(),
            None
        );
    }
}
