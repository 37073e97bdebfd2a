//! A run directory, as every reference implementation writes it: `config.toml` (every setting, defaults filled
//! in), `metrics.jsonl` (written by the trainer), `summary.json`, `plots/*.svg`, `checkpoint/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Serialize(String),
    #[error(transparent)]
    Checkpoint(#[from] crate::CheckpointError),
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) `path`.
    pub fn create(path: &Path) -> Result<RunDir, RunError> {
        std::fs::create_dir_all(path.join("plots")).map_err(|source| RunError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(RunDir {
            path: path.to_owned(),
        })
    }

    pub fn write_config(&self, config: &impl Serialize) -> Result<(), RunError> {
        let text =
            toml::to_string_pretty(config).map_err(|e| RunError::Serialize(e.to_string()))?;
        Ok(write_atomic(
            &self.path.join("config.toml"),
            text.as_bytes(),
        )?)
    }

    pub fn write_summary(&self, summary: &impl Serialize) -> Result<(), RunError> {
        let text =
            serde_json::to_vec_pretty(summary).map_err(|e| RunError::Serialize(e.to_string()))?;
        Ok(write_atomic(&self.path.join("summary.json"), &text)?)
    }

    /// Writes `rows` as JSON Lines to `name` in the run directory (atomically).
    pub fn write_jsonl<T: Serialize>(&self, name: &str, rows: &[T]) -> Result<(), RunError> {
        let mut text = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut text, row)
                .map_err(|e| RunError::Serialize(e.to_string()))?;
            text.push(b'\n');
        }
        Ok(write_atomic(&self.path.join(name), &text)?)
    }

    pub fn write_plot(&self, name: &str, svg: &str) -> Result<(), RunError> {
        Ok(write_atomic(
            &self.path.join("plots").join(format!("{name}.svg")),
            svg.as_bytes(),
        )?)
    }

    /// `(step, value)` pairs of `key` from `metrics.jsonl`.
    pub fn metric(&self, key: &str) -> Vec<(f64, f64)> {
        let Ok(text) = std::fs::read_to_string(self.path.join("metrics.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| Some((v["step"].as_f64()?, v[key].as_f64()?)))
            .collect()
    }
}

/// A line chart as standalone SVG (no script, no external font): one or more named series over a shared x axis.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> String {
    let (w, h, left, right, bottom) = (640.0, 360.0, 64.0, 16.0, 48.0);
    // The legend sits in rows between the title and the plot, never over the data: about 7 px per character.
    let mut legend = Vec::new();
    let (mut lx, mut ly) = (left, 44.0);
    for (i, (name, _)) in series.iter().enumerate() {
        let width = 28.0 + 7.0 * name.chars().count() as f64;
        if lx + width > w - right && lx > left {
            lx = left;
            ly += 16.0;
        }
        legend.push((i, lx, ly));
        lx += width + 12.0;
    }
    let top = ly + 14.0;
    let points: Vec<&(f64, f64)> = series.iter().flat_map(|(_, p)| p).collect();
    let bound = |f: fn(&(f64, f64)) -> f64| {
        let values: Vec<f64> = points
            .iter()
            .map(|p| f(p))
            .filter(|v| v.is_finite())
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 1.0, lo + 1.0)
        } else {
            (0.0, 1.0)
        }
    };
    let (x0, x1) = bound(|p| p.0);
    let (y0, y1) = bound(|p| p.1);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let sy = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let colours = ["#2f5d8a", "#c2410c", "#15803d", "#7e22ce"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        w / 2.0,
        esc(title)
    );
    // Grid lines and labels at round values (1, 2 or 5 times a power of ten) inside each axis' range.
    for fy in nice_ticks(y0, y1) {
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - right,
            left - 6.0,
            sy(fy) + 4.0,
            tick(fy),
            y = sy(fy),
        );
    }
    for fx in nice_ticks(x0, x1) {
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            sx(fx),
            h - bottom + 16.0,
            tick(fx)
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text>\n",
        (left + w - right) / 2.0,
        h - 10.0,
        esc(x_label),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        esc(y_label)
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let path: Vec<String> = pts
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        );
        // Sparse series (e.g. periodic evaluations) get a marker per point, so even one point shows.
        if path.len() < 30 {
            for point in &path {
                let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
                svg += &format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>\n");
            }
        }
        let (_, x, y) = legend[i];
        svg += &format!(
            "<line x1=\"{x}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{y}\">{}</text>\n",
            x + 20.0,
            y - 4.0,
            y - 4.0,
            x + 26.0,
            esc(name)
        );
    }
    svg + "</svg>\n"
}

/// The mean of each point and the `window − 1` before it: a readable line through a noisy series (PPO's rollouts).
pub fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let part = &points[i.saturating_sub(window - 1)..=i];
            (x, part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64)
        })
        .collect()
}

/// About five round values between `lo` and `hi`.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .take(12)
        .collect()
}

fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn charts_are_standalone_svg_with_escaped_labels() {
        let svg = super::line_chart(
            "Loss <train>",
            "step",
            "loss",
            &[("train", vec![(1.0, 3.0), (2.0, 2.0), (3.0, f64::NAN)])],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("Loss &lt;train&gt;") && !svg.contains("<script"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(
            super::nice_ticks(1.0, 500.0),
            vec![100.0, 200.0, 300.0, 400.0, 500.0]
        );
        assert_eq!(super::nice_ticks(0.39, 6.93), vec![2.0, 4.0, 6.0]);
        assert!(
            super::nice_ticks(0.2, 0.72)
                .iter()
                .all(|v| (0.2..=0.72).contains(v))
        );
    }
}
