//! Where catalog text comes from: the copy embedded in the binary at build time, or a directory on disk.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

pub use embedded::WORKSPACE_CRATES;

/// One catalog file: its path as shown to the user, and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    /// The file name without `.toml`, which must equal the entry's id.
    pub fn stem(&self) -> Option<&str> {
        let name = self.path.rsplit(['/', '\\']).next()?;
        name.strip_suffix(".toml")
    }
}

/// The text of a whole catalog: `taxonomy.toml` and every `entries/**/*.toml`, sorted by path.
#[derive(Clone, Debug)]
pub struct Sources {
    pub taxonomy: SourceFile,
    pub entries: Vec<SourceFile>,
}

/// Why a catalog directory could not be read at all (as opposed to read and found invalid).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "{dir} is not a catalog directory: {missing} is missing (a catalog holds taxonomy.toml and entries/)"
    )]
    NotACatalog { dir: PathBuf, missing: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Sources {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Sources {
        let file = |(path, text): (&str, &str)| SourceFile {
            path: path.to_owned(),
            text: text.to_owned(),
        };
        Sources {
            taxonomy: file(embedded::TAXONOMY),
            entries: embedded::ENTRIES.iter().copied().map(file).collect(),
        }
    }

    /// Reads `dir/taxonomy.toml` and `dir/entries/**/*.toml`. Files that are not UTF-8 come back as diagnostics in
    /// the second value, so that one bad file does not hide the problems of the others.
    pub fn read_dir(dir: &Path) -> Result<(Sources, Diagnostics), ReadError> {
        let taxonomy_path = dir.join("taxonomy.toml");
        let entries_dir = dir.join("entries");
        for required in [&taxonomy_path, &entries_dir] {
            if !required.exists() {
                return Err(ReadError::NotACatalog {
                    dir: dir.to_owned(),
                    missing: required.clone(),
                });
            }
        }
        let mut bad = Vec::new();
        let taxonomy = read_file(&taxonomy_path, &mut bad)?.unwrap_or_else(|| SourceFile {
            path: taxonomy_path.display().to_string(),
            text: String::new(),
        });
        let mut paths = Vec::new();
        collect_toml(&entries_dir, &mut paths)?;
        paths.sort();
        let mut entries = Vec::with_capacity(paths.len());
        for path in paths {
            entries.extend(read_file(&path, &mut bad)?);
        }
        Ok((Sources { taxonomy, entries }, Diagnostics(bad)))
    }
}

/// `None` (with a diagnostic in `bad`) for a file that is not UTF-8.
fn read_file(path: &Path, bad: &mut Vec<Diagnostic>) -> Result<Option<SourceFile>, ReadError> {
    let bytes = fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let shown = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(SourceFile { path: shown, text })),
        Err(err) => {
            let valid = err.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(err.as_bytes()).into_owned();
            let prefix = String::from_utf8_lossy(&err.as_bytes()[..valid]).into_owned();
            bad.push(Diagnostic::at(
                &shown,
                &lossy,
                prefix.len()..prefix.len() + 1,
                format!("the file is not valid UTF-8 (byte {valid})"),
                Some("save the file as UTF-8".into()),
            ));
            Ok(None)
        }
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReadError> {
    let io = |source| ReadError::Io {
        path: dir.to_owned(),
        source,
    };
    for item in fs::read_dir(dir).map_err(io)? {
        let path = item.map_err(io)?.path();
        if path.is_dir() {
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "toml") {
            out.push(path);
        }
    }
    Ok(())
}
