//! What this binary was built from: version, commit, build date, compiler and target (set by
//! `build.rs`), for `reflex version`, `--version` and support requests.

use serde::Serialize;

/// The build a binary came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The crate version (`Cargo.toml`).
    pub version: &'static str,
    /// Short Git commit, `unknown` when built outside a Git checkout.
    pub commit: &'static str,
    /// When it was built (SOURCE_DATE_EPOCH when set), RFC 3339 in UTC.
    pub build_date: String,
    /// `rustc --version` of the compiler.
    pub rustc: &'static str,
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
}

/// The build of this binary.
pub fn build_info() -> BuildInfo {
    let epoch: i64 = env!("REFLEX_BUILD_EPOCH").parse().unwrap_or(0);
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("REFLEX_BUILD_COMMIT"),
        build_date: chrono::DateTime::from_timestamp(epoch, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rustc: env!("REFLEX_BUILD_RUSTC"),
        target: env!("REFLEX_BUILD_TARGET"),
    }
}

/// `0.1.0 (commit 1a2b3c4, built 2026-05-06T12:00:00Z)`: what `--version` prints after the name.
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let info = build_info();
        format!(
            "{} (commit {}, built {})",
            info.version, info.commit, info.build_date
        )
    })
}
