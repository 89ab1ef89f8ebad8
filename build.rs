//! Build script: records the commit and build date that `reflex version` and `--version` show.
//!
//! The commit comes from `git rev-parse --short HEAD` ("unknown" outside a Git checkout, e.g.
//! a source tarball); the date honours SOURCE_DATE_EPOCH so reproducible builds stay
//! reproducible, else it is the time of the build, in UTC.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=REFLEX_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=REFLEX_BUILD_EPOCH={epoch}");
    println!("cargo:rustc-env=REFLEX_BUILD_RUSTC={rustc_version}");
    println!(
        "cargo:rustc-env=REFLEX_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit moves HEAD (or the branch it points to, kept in the common directory of a
    // worktree); outside Git nothing is watched but the script itself.
    println!("cargo:rerun-if-changed=build.rs");
    let git = |arg: &str| {
        Command::new("git")
            .args(["rev-parse", arg])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    if let (Some(git_dir), Some(common_dir)) = (git("--git-dir"), git("--git-common-dir")) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        // Only files that exist: Cargo reruns the script on every build for a missing one,
        // and a new build date each time would rebuild the crate each time. A packed ref
        // lives in packed-refs.
        let reference = std::fs::read_to_string(format!("{git_dir}/HEAD"))
            .ok()
            .and_then(|head| head.trim().strip_prefix("ref: ").map(str::to_owned));
        for path in reference
            .map(|r| format!("{common_dir}/{r}"))
            .into_iter()
            .chain([format!("{common_dir}/packed-refs")])
        {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
