//! Shared by the end-to-end tests: run the real `rice` binary and read what it printed.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// Runs `rice` with `args` in the current directory (colour off).
pub fn rice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rice"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the rice binary runs")
}

/// Runs `rice` with `args` in `cwd`.
pub fn rice_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rice"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("the rice binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// The stdout of a run that must succeed (the assertion shows both streams otherwise).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The stderr of a run that must fail.
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure; stdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON file, parsed (the panic names the file).
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}
