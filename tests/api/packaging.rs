//! The container image: the Dockerfile copies every file the binary embeds
//! at compile time, so `docker build` works on a fresh checkout (there is
//! no Docker engine here to build it).

use std::path::{Component, Path, PathBuf};

/// The top-level paths the Dockerfile's build stage copies.
fn copied() -> Vec<String> {
    let dockerfile = std::fs::read_to_string("Dockerfile").expect("the Dockerfile");
    dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .filter(|rest| !rest.starts_with("--from"))
        .flat_map(|rest| {
            let mut parts: Vec<&str> = rest.split_whitespace().collect();
            parts.pop(); // the destination
            parts.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// Every file `src/` embeds outside its test modules, relative to the
/// repository, with the source file that embeds it.
fn embedded() -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Test modules come last in a file and are not in the binary.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for piece in code.split(macro_name).skip(1) {
                    let relative = piece.split('"').next().unwrap_or_default();
                    let target = normalize(&dir.join(relative));
                    found.push((target, path.clone()));
                }
            }
            for piece in code.split("sqlx::migrate!(\"").skip(1) {
                let target = piece.split('"').next().unwrap_or_default();
                found.push((PathBuf::from(target), path.clone()));
            }
        }
    }
    found
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_dockerfile_copies_every_file_the_binary_embeds() {
    let copied = copied();
    let embedded = embedded();
    assert!(
        embedded
            .iter()
            .any(|(target, _)| target.starts_with("assets")),
        "the scan found the embedded assets: {embedded:?}"
    );
    for (target, by) in embedded {
        assert!(
            target.exists(),
            "{} embeds {}, which is missing",
            by.display(),
            target.display()
        );
        let top = target
            .components()
            .next()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            copied.iter().any(|path| path.trim_end_matches('/') == top
                || path.trim_end_matches('/') == target.to_string_lossy()),
            "{} embeds {}, but the Dockerfile copies only {copied:?}",
            by.display(),
            target.display()
        );
    }
}
