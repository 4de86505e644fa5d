//! Replays every fuzz target's checked-in corpus (`fuzz/corpus/<target>/`) and the
//! inputs that once broke a target (`fuzz/regressions/<target>/`) on stable: what
//! libFuzzer found stays fixed, and `make test` runs the targets without nightly.

use std::path::{Path, PathBuf};

/// The inputs under `dir/<target>/`, sorted for a stable order.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in meshray_fuzz::TARGETS {
        let seeds = inputs("corpus", name);
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{name}/ holds {} seeds; add real payloads",
            seeds.len()
        );
    }
}

#[test]
fn corpus_and_regressions_replay_without_breaking_an_invariant() {
    let mut replayed = 0;
    for (name, target) in meshray_fuzz::TARGETS {
        for path in inputs("corpus", name)
            .into_iter()
            .chain(inputs("regressions", name))
        {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} breaks the target",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed > 0);
}
