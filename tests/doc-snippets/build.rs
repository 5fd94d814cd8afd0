//! Collects the Rust snippets of the documentation into `$OUT_DIR/snippets.md`
//! (see `src/lib.rs`). A snippet preceded by `<!-- rust-context: NAME -->`
//! replaces the line `// SNIPPET` of `context/NAME.rs`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = here.join("../..");
    let mut sources = vec![repo.join("README.md"), repo.join("core/README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(repo.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    sources.extend(docs);
    println!("cargo:rerun-if-changed={}", repo.join("docs").display());
    println!("cargo:rerun-if-changed={}", here.join("context").display());

    let mut out = String::new();
    let mut count = 0;
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let text = fs::read_to_string(source).unwrap();
        let name = source
            .strip_prefix(&repo)
            .unwrap_or(source)
            .display()
            .to_string();
        for (line, context, code) in rust_blocks(&text) {
            let code = match context {
                Some(ctx) => wrap(&here, &name, line, &ctx, &code),
                None => code,
            };
            count += 1;
            // The heading names the snippet in cargo test's output.
            writeln!(out, "{name} line {line}:\n\n```rust\n{code}```\n").unwrap();
        }
    }
    assert!(count > 0, "no ```rust snippet found in the documentation");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("snippets.md");
    fs::write(dest, out).unwrap();
}

/// The ```rust blocks of `text`: (line of the fence, context name, code).
fn rust_blocks(text: &str) -> Vec<(usize, Option<String>, String)> {
    let mut blocks = Vec::new();
    let mut context = None;
    let mut current: Option<(usize, Option<String>, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some((_, _, code)) = current.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.push(current.take().unwrap());
            } else {
                code.push_str(line);
                code.push('\n');
            }
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("<!-- rust-context:") {
            context = Some(rest.trim_end_matches("-->").trim().to_string());
        } else if trimmed == "```rust" {
            current = Some((i + 1, context.take(), String::new()));
        } else if !trimmed.is_empty() {
            context = None; // a marker applies to the block right after it
        }
    }
    blocks
}

fn wrap(here: &Path, source: &str, line: usize, context: &str, code: &str) -> String {
    let path = here.join("context").join(format!("{context}.rs"));
    let template = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{source} line {line}: context {}: {e}", path.display()));
    assert!(
        template.contains("// SNIPPET\n"),
        "{} has no `// SNIPPET` line",
        path.display()
    );
    template.replace("// SNIPPET\n", code)
}
