//! Terminal output: width, emphasis, and files written atomically.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

/// Width to wrap prose at: `$COLUMNS` when set, else 88, never more than 100.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(88)
        .clamp(40, 100)
}

/// Whether to use terminal emphasis: stdout is a terminal and `NO_COLOR` is unset.
pub fn emphasis_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Bold text when [`emphasis_enabled`]; plain text otherwise.
pub fn bold(s: &str) -> String {
    if emphasis_enabled() {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so a reader never sees
/// a half-written file and an interrupted export leaves the old file intact.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
