//! Every lab of the course book runs, so that no lab can rot.
//!
//! Each `rice …` command in a lab's ```` ```sh ```` blocks is run, in order, in a fresh directory per lab (a lab must
//! bring its own prerequisites), after a documented substitution that makes it tiny:
//!
//! | command | substitution |
//! |---|---|
//! | `rice run pretrain --preset toy-s` (or `toy-m`) | `--preset toy-xs --out runs/pretrain-toy-s`: the smallest model, where later commands expect the bigger one |
//! | `rice run <method>` | `--steps 2` |
//! | `rice run aligner`, `rice run stream-aligner` | `--steps 10`: a corrector trained for 2 steps writes nothing, which `rice aligner correct` reports as an error |
//! | `rice run dpo` | also `--pairs world` unless the lab chose `--pairs` (sampling pairs costs more than training) |
//! | `rice run elasticity --preset P` | `--config P.toml`, a tiny configuration (a base pre-trained for 3 steps, 2-step fine-tunes, 4 evaluation prompts) |
//! | `rice eval arena`, `rice eval winrate` | `--per-family 2 --max-new-tokens 16` (and `--resamples 200`) |
//! | `rice bench aligners` | `--prompts-per-family 1 --repeats 1 --max-tokens 16` |
//! | `rice aligner correct`, `rice aligner pairs`, `rice lm generate` | `--max-new-tokens 16` |
//!
//! Labs that start with the same commands share their results (the directory after a common prefix is copied, not
//! recomputed): the commands are deterministic, so this changes the time taken, not what is checked. Every
//! `runs/…` path a lab names in inline code must exist once its commands have run. Commands that keep running
//! (servers) belong in ```` ```text ```` blocks; a lab's `sh` blocks hold `rice` commands only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const STEPS: &str = "2";
const CORRECTOR_STEPS: &str = "10";

struct Lab {
    name: String,
    text: String,
    commands: Vec<Vec<String>>,
}

fn labs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/labs")
}

fn read_labs() -> Vec<Lab> {
    let mut labs: Vec<Lab> = std::fs::read_dir(labs_dir())
        .expect("book/labs exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let commands = sh_commands(&text)
                .into_iter()
                .map(|(line, words)| {
                    assert_eq!(
                        words.first().map(String::as_str),
                        Some("rice"),
                        "book/labs/{name}.md:{line}: a lab's sh blocks hold rice commands only (put other shell \
                         commands and servers in text blocks)"
                    );
                    words
                })
                .collect();
            Lab {
                name,
                text,
                commands,
            }
        })
        .collect();
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    labs
}

/// The commands of the ```` ```sh ```` blocks, as (line, words): comments and blank lines dropped, `\` continuations
/// joined, quotes removed.
fn sh_commands(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed.trim_start_matches('`').trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                text.push_str(part);
                text.push(' ');
                pending = Some((start, text));
            }
            None => {
                text.push_str(trimmed);
                let words = shell_words(&text);
                if !words.is_empty() {
                    out.push((start, words));
                }
            }
        }
    }
    out
}

/// POSIX-shell-like word splitting: whitespace, '…' and "…" quotes, backslash escapes, `#` comments.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Sets `flag` to `value`, replacing a value already given.
fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => args[i + 1] = value.to_owned(),
        _ => {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        }
    }
}

fn remove(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    let v = args.get(i + 1).cloned();
    args.drain(i..(i + 2).min(args.len()));
    v
}

/// The tiny version of a lab command (see the table at the top of this file).
fn tiny(command: &[String], configs: &Path) -> Vec<String> {
    let mut args = command[1..].to_vec();
    let sub: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
    match sub.as_slice() {
        ["run", "pretrain"] => {
            let preset = value(&args, "--preset").unwrap_or("toy-s").to_owned();
            if preset != "toy-xs" {
                set(&mut args, "--preset", "toy-xs");
                if value(&args, "--out").is_none() {
                    set(&mut args, "--out", &format!("runs/pretrain-{preset}"));
                }
            }
            set(&mut args, "--steps", STEPS);
        }
        ["run", "elasticity"] => {
            if let Some(preset) = remove(&mut args, "--preset") {
                let config = configs.join(format!("{preset}.toml"));
                set(&mut args, "--config", &config.to_string_lossy());
            }
        }
        ["run", "dpo"] => {
            set(&mut args, "--steps", STEPS);
            if value(&args, "--pairs").is_none() {
                set(&mut args, "--pairs", "world");
            }
        }
        ["run", "aligner" | "stream-aligner"] => set(&mut args, "--steps", CORRECTOR_STEPS),
        ["run", _] => set(&mut args, "--steps", STEPS),
        ["eval", kind] => {
            let winrate = *kind == "winrate";
            set(&mut args, "--per-family", "2");
            set(&mut args, "--max-new-tokens", "16");
            if winrate {
                set(&mut args, "--resamples", "200");
            }
        }
        ["bench", "aligners"] => {
            set(&mut args, "--prompts-per-family", "1");
            set(&mut args, "--repeats", "1");
            set(&mut args, "--max-tokens", "16");
        }
        ["aligner", "correct" | "pairs"] | ["lm", "generate"] => {
            set(&mut args, "--max-new-tokens", "16")
        }
        _ => {}
    }
    args
}

/// The elasticity preset made tiny: the preset's own settings (so that a new setting is carried along), with
/// every size cut down.
fn write_tiny_elasticity_config(dir: &Path) {
    let mut config: toml::Table =
        toml::from_str(&toml::to_string(&rice_elasticity::ElasticityConfig::toy()).unwrap())
            .unwrap();
    let int = |n: i64| toml::Value::Integer(n);
    let ints = |ns: &[i64]| toml::Value::Array(ns.iter().map(|n| int(*n)).collect());
    for (key, v) in [
        ("pretrain_steps", int(3)),
        ("batch_size", int(4)),
        ("max_len", int(64)),
        ("eval_hazard_prompts", int(4)),
        ("max_new_tokens", int(8)),
    ] {
        config.insert(key.into(), v);
    }
    let table = |config: &mut toml::Table, name: &str| -> toml::Table {
        config
            .remove(name)
            .and_then(|v| v.as_table().cloned())
            .unwrap_or_default()
    };
    let mut rebound = table(&mut config, "rebound");
    rebound.insert("positive".into(), ints(&[8, 16]));
    rebound.insert("align_steps".into(), int(2));
    rebound.insert("negative".into(), ints(&[0, 4, 8]));
    rebound.insert("perturb_batch".into(), int(4));
    rebound.insert("perturb_repeats".into(), int(1));
    config.insert("rebound".into(), toml::Value::Table(rebound));
    let mut resistance = table(&mut config, "resistance");
    for (key, n) in [
        ("stage_examples", 8),
        ("stage_steps", 2),
        ("answer_prompts", 4),
        ("tune_steps", 2),
    ] {
        resistance.insert(key.into(), int(n));
    }
    config.insert("resistance".into(), toml::Value::Table(resistance));
    let mut scaling = table(&mut config, "scaling");
    scaling.insert("positive".into(), int(8));
    let mut base = toml::Table::new();
    base.insert("preset".into(), toml::Value::String("toy-xs".into()));
    base.insert("pretrain_steps".into(), int(3));
    scaling.insert(
        "bases".into(),
        toml::Value::Array(vec![toml::Value::Table(base)]),
    );
    config.insert("scaling".into(), toml::Value::Table(scaling));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("toy.toml"), toml::to_string(&config).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `runs/…` paths the lab's text names in inline code.
fn named_run_paths(text: &str) -> Vec<String> {
    let mut in_block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1
                && span.starts_with("runs/")
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
            {
                out.push(span.trim_end_matches('/').to_owned());
            }
        }
    }
    out
}

#[test]
fn every_lab_runs_with_tiny_settings() {
    let started = Instant::now();
    let labs = read_labs();
    for expected in rice_book::LAB_ORDER {
        assert!(
            labs.iter().any(|l| l.name == *expected),
            "book/labs/{expected}.md is missing"
        );
    }
    let scratch = tempfile::tempdir().unwrap();
    let configs = scratch.path().join("configs");
    write_tiny_elasticity_config(&configs);
    let plans: Vec<(String, Vec<Vec<String>>)> = labs
        .iter()
        .map(|lab| {
            let tiny_commands = lab.commands.iter().map(|c| tiny(c, &configs)).collect();
            (lab.name.clone(), tiny_commands)
        })
        .collect();
    // Snapshots of a lab directory after a prefix of commands that a later lab starts with too.
    let mut snapshots: HashMap<Vec<Vec<String>>, PathBuf> = HashMap::new();
    let mut report = Vec::new();
    for (n, (lab, (name, commands))) in labs.iter().zip(&plans).enumerate() {
        assert!(!commands.is_empty(), "book/labs/{name}.md runs no command");
        let dir = scratch.path().join(format!("lab-{name}"));
        let reused = (0..=commands.len())
            .rev()
            .find(|k| snapshots.contains_key(&commands[..*k]))
            .unwrap_or(0);
        match snapshots.get(&commands[..reused]) {
            Some(snapshot) if reused > 0 => copy_dir(snapshot, &dir),
            _ => std::fs::create_dir_all(&dir).unwrap(),
        }
        for k in reused..commands.len() {
            let args = &commands[k];
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_rice"))
                .args(args)
                .current_dir(&dir)
                .env("NO_COLOR", "1")
                .output()
                .expect("rice runs");
            assert!(
                out.status.success(),
                "book/labs/{name}.md: `rice {}` (tiny form of `{}`) failed\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                lab.commands[k].join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            report.push(format!(
                "{name}: rice {} — {:.1} s",
                args.join(" "),
                t.elapsed().as_secs_f64()
            ));
            let prefix = &commands[..=k];
            let shared = plans[n + 1..]
                .iter()
                .any(|(_, later)| later.starts_with(prefix));
            if shared && !snapshots.contains_key(prefix) {
                let snapshot = scratch.path().join(format!("snapshot-{}", snapshots.len()));
                copy_dir(&dir, &snapshot);
                snapshots.insert(prefix.to_vec(), snapshot);
            }
        }
        if reused > 0 {
            report.push(format!(
                "{name}: first {reused} commands shared with an earlier lab"
            ));
        }
        for path in named_run_paths(&lab.text) {
            assert!(
                dir.join(&path).exists(),
                "book/labs/{name}.md names `{path}`, which its commands did not create"
            );
        }
    }
    eprintln!(
        "{}\nall labs: {:.0} s",
        report.join("\n"),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn lab_commands_are_parsed_like_a_shell_would() {
    assert_eq!(
        shell_words(r#"rice run x --prompt "How do I brew it?" --a 'b c' # comment"#),
        [
            "rice",
            "run",
            "x",
            "--prompt",
            "How do I brew it?",
            "--a",
            "b c"
        ]
    );
    let md = "text\n\n```sh\nrice run sft \\\n  --steps 5\n# a comment\n\nrice run dpo\n```\n\n```text\nrice serve\n```\n";
    let commands: Vec<Vec<String>> = sh_commands(md).into_iter().map(|(_, w)| w).collect();
    assert_eq!(
        commands,
        [
            vec!["rice", "run", "sft", "--steps", "5"],
            vec!["rice", "run", "dpo"]
        ]
    );
    let configs = Path::new("/c");
    let words = |s: &str| shell_words(s);
    assert_eq!(
        tiny(&words("rice run pretrain --preset toy-s"), configs).join(" "),
        "run pretrain --preset toy-xs --out runs/pretrain-toy-s --steps 2"
    );
    assert_eq!(
        tiny(&words("rice run dpo --preset toy --steps 100"), configs).join(" "),
        "run dpo --preset toy --steps 2 --pairs world"
    );
    assert_eq!(
        tiny(
            &words("rice run elasticity --preset toy --probe scaling"),
            configs
        )
        .join(" "),
        "run elasticity --probe scaling --config /c/toy.toml"
    );
    assert_eq!(
        named_run_paths(
            "see `runs/sft-toy/plots/loss.svg` and `runs/<name>/` and `runs/x/`\n```\n`runs/no`\n```"
        ),
        ["runs/sft-toy/plots/loss.svg", "runs/x"]
    );
}
