//! Runs of the reference implementations, read from a directory of run directories (`--runs DIR`). A run directory
//! holds `config.toml`, `metrics.jsonl`, `summary.json` and `plots/*.svg` (see the design); this module only reads
//! them, as plain files: the site never links the training code.
//!
//! Nothing outside the runs directory is ever read: names are single path segments, and a symlink whose target lies
//! outside (a run directory, `config.toml` or a plot linking elsewhere) counts as absent. Symlinks within it (say
//! `latest -> dpo-3`) work.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::Site;
use crate::error::{ApiError, AppError, PageError, PathParams};

/// Metrics rows shown on a run page (the last ones); the JSON API returns them all.
const METRIC_ROWS_SHOWN: usize = 20;

/// One run directory, read.
#[derive(Serialize)]
pub struct Run {
    pub name: String,
    /// `summary.json`, if present and valid JSON.
    pub summary: Option<Value>,
    /// `config.toml` as text.
    pub config: Option<String>,
    /// Lines of `metrics.jsonl` that parse as JSON objects.
    pub metrics: Vec<Value>,
    /// File names in `plots/` ending in `.svg`.
    pub plots: Vec<String>,
}

/// A run name is one path segment: letters, digits, `-`, `_`, `.`, not starting with a dot.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `root/relative` with every symlink resolved, if it exists and still lies under `root`.
fn inside(root: &FsPath, relative: impl AsRef<FsPath>) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let path = root.join(relative).canonicalize().ok()?;
    path.starts_with(&root).then_some(path)
}

fn runs_dir(site: &Site) -> Result<&FsPath, AppError> {
    site.options
        .runs_dir
        .as_deref()
        .ok_or_else(|| AppError::NotFound {
            what: "runs directory",
            id: "(none configured: start the server with `rice serve --runs DIR`)".into(),
        })
}

/// Names of the run directories (those holding `summary.json` or `metrics.jsonl`), newest first.
pub fn list(dir: &FsPath) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut runs: Vec<(std::time::SystemTime, String)> = read
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok().filter(|n| valid_name(n))?;
            let marker = ["summary.json", "metrics.jsonl"]
                .into_iter()
                .filter_map(|file| inside(dir, FsPath::new(&name).join(file)))
                .find(|p| p.is_file())?;
            let modified = marker
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            Some((modified, name))
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    runs.into_iter().map(|(_, n)| n).collect()
}

pub fn read(dir: &FsPath, name: &str) -> Result<Run, AppError> {
    let not_found = || AppError::NotFound {
        what: "run",
        id: name.to_owned(),
    };
    if !valid_name(name) {
        return Err(not_found());
    }
    let Some(path) = inside(dir, name).filter(|p| p.is_dir()) else {
        return Err(not_found());
    };
    let text = |file: &str| std::fs::read_to_string(inside(dir, path.join(file))?).ok();
    let summary = text("summary.json").and_then(|t| serde_json::from_str(&t).ok());
    let metrics: Vec<Value> = text("metrics.jsonl")
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(Value::is_object)
                .collect()
        })
        .unwrap_or_default();
    let mut plots: Vec<String> = std::fs::read_dir(path.join("plots"))
        .map(|read| {
            read.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_name(n) && n.ends_with(".svg"))
                .filter(|n| inside(dir, FsPath::new(name).join("plots").join(n)).is_some())
                .collect()
        })
        .unwrap_or_default();
    plots.sort();
    if summary.is_none() && metrics.is_empty() {
        return Err(not_found());
    }
    Ok(Run {
        name: name.to_owned(),
        summary,
        config: text("config.toml"),
        metrics,
        plots,
    })
}

// ── Pages ─────────────────────────────────────────────────────────────────────────────────────────────────────

struct RunRow {
    name: String,
    facts: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    q: String,
    configured: bool,
    runs: Vec<RunRow>,
}

/// `key: value` pairs of a JSON object's scalar members, nested objects flattened with dotted keys (`after.helpfulness`)
/// down to `depth` levels; arrays (samples, per-step lists) are left to the JSON.
fn scalars(value: Option<&Value>, max: usize) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, depth: usize, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            Value::Number(_) => out.push((prefix.to_owned(), cell(v))),
            Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
            Value::Object(map) if depth > 0 => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, depth - 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(v @ Value::Object(_)) = value {
        walk("", v, 3, &mut out);
    }
    out.truncate(max);
    out
}

pub async fn index(State(site): State<Arc<Site>>) -> Result<Response, PageError> {
    let configured = site.options.runs_dir.is_some();
    let runs = site
        .options
        .runs_dir
        .as_deref()
        .map(|dir| {
            list(dir)
                .into_iter()
                .filter_map(|name| read(dir, &name).ok())
                .map(|run| RunRow {
                    facts: scalars(run.summary.as_ref(), 6)
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(" · "),
                    name: run.name,
                })
                .collect()
        })
        .unwrap_or_default();
    let html = RunsPage {
        q: String::new(),
        configured,
        runs,
    }
    .render()
    .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Html(html).into_response())
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    q: String,
    name: String,
    summary: Vec<(String, String)>,
    config: Option<String>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    total_rows: usize,
    plots: Vec<String>,
}

pub async fn show(
    State(site): State<Arc<Site>>,
    PathParams(name): PathParams<String>,
) -> Result<Response, PageError> {
    let run = read(runs_dir(&site)?, &name)?;
    let mut columns: Vec<String> = Vec::new();
    for row in &run.metrics {
        if let Value::Object(map) = row {
            for k in map.keys() {
                if !columns.contains(k) && columns.len() < 10 {
                    columns.push(k.clone());
                }
            }
        }
    }
    let shown = &run.metrics[run.metrics.len().saturating_sub(METRIC_ROWS_SHOWN)..];
    let rows = shown
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).map(cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let page = RunPage {
        q: String::new(),
        summary: scalars(run.summary.as_ref(), 100),
        config: run.config,
        columns,
        rows,
        total_rows: run.metrics.len(),
        plots: run.plots,
        name: run.name,
    };
    let html = page
        .render()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Html(html).into_response())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.4}")
                }
            },
        ),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A plot, served as an image with a CSP that forbids scripts: SVG from a run directory is data, not code.
pub async fn plot(
    State(site): State<Arc<Site>>,
    PathParams((name, file)): PathParams<(String, String)>,
) -> Result<Response, PageError> {
    let dir = runs_dir(&site)?;
    let not_found = || AppError::NotFound {
        what: "plot",
        id: format!("{name}/{file}"),
    };
    if !valid_name(&name) || !valid_name(&file) || !file.ends_with(".svg") {
        return Err(not_found().into());
    }
    let path = inside(dir, FsPath::new(&name).join("plots").join(&file)).ok_or_else(not_found)?;
    let bytes = std::fs::read(path).map_err(|_| not_found())?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
        ],
        bytes,
    )
        .into_response())
}

// ── API ───────────────────────────────────────────────────────────────────────────────────────────────────────

pub async fn api_index(State(site): State<Arc<Site>>) -> Json<Value> {
    let runs: Vec<Value> = site
        .options
        .runs_dir
        .as_deref()
        .map(|dir| {
            list(dir)
                .into_iter()
                .filter_map(|name| read(dir, &name).ok())
                .map(|r| serde_json::json!({ "name": r.name, "summary": r.summary, "url": format!("/runs/{}", r.name) }))
                .collect()
        })
        .unwrap_or_default();
    Json(serde_json::json!({ "total": runs.len(), "runs": runs }))
}

pub async fn api_show(
    State(site): State<Arc<Site>>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(read(runs_dir(&site)?, &name)?))
}
