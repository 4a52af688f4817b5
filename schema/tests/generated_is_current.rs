//! The checked-in flatbuffers code must be what flatc 23.5.26 generates from
//! `schema/fbs/*.fbs`. With `STRATA_REGEN=1` this test rewrites it instead
//! (`tools/regen-schema.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn generate(fbs: &Path, out: &Path) {
    let status = Command::new(flatc::flatc())
        .arg("--rust")
        .arg("-o")
        .arg(out)
        .arg(fbs)
        .status()
        .expect("run flatc");
    assert!(status.success(), "flatc failed on {}", fbs.display());
}

#[test]
fn generated_code_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let checked_in = root.join("src/generated");
    let regen = std::env::var_os("STRATA_REGEN").is_some();
    let tmp = tempfile::tempdir().unwrap();
    let mut schemas: Vec<PathBuf> = std::fs::read_dir(root.join("fbs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "fbs"))
        .collect();
    schemas.sort();
    // Both protocols' schemas are checked: a missing one would pass silently.
    for expected in ["native.fbs", "replication.fbs"] {
        assert!(
            schemas.iter().any(|p| p.ends_with(expected)),
            "schema/fbs/{expected} is missing"
        );
    }
    for fbs in &schemas {
        let out = if regen {
            checked_in.clone()
        } else {
            tmp.path().to_path_buf()
        };
        generate(fbs, &out);
        let name = format!(
            "{}_generated.rs",
            fbs.file_stem().unwrap().to_string_lossy()
        );
        let fresh = std::fs::read(out.join(&name)).unwrap();
        let current = std::fs::read(checked_in.join(&name)).unwrap_or_default();
        assert!(
            fresh == current,
            "{name} is stale: run tools/regen-schema.sh and commit the result"
        );
    }
}
