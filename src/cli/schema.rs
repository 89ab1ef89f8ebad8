//! `reflex schema`: the JSON Schema of rule files, rule test files and the configuration file,
//! for editors and CI. Each carries an `$id`: where the committed copy (docs/schema/) is
//! published, so a `# yaml-language-server: $schema=` line can name it.

use std::process::ExitCode;

use clap::ValueEnum;

/// Which schema to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SchemaKind {
    /// A rules file (`rules: [...]`).
    #[default]
    Rules,
    /// A rule test file (`*.test.yaml`).
    Tests,
    /// The `reflex run` configuration file (also `reflex config schema`).
    Config,
}

/// Where the committed schemas (docs/schema/) are published; a schema's `$id` is this
/// followed by its file name.
pub const SCHEMA_BASE_URL: &str =
    "https://raw.githubusercontent.com/reflex-project/reflex/main/docs/schema/";

impl SchemaKind {
    /// The committed file's name under docs/schema/.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Rules => "rules.schema.json",
            SchemaKind::Tests => "tests.schema.json",
            SchemaKind::Config => "config.schema.json",
        }
    }
}

/// Arguments of `reflex schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Which file format.
    #[arg(long, value_enum, default_value_t = SchemaKind::Rules)]
    pub kind: SchemaKind,
}

/// The schema as pretty JSON.
pub fn schema_json(kind: SchemaKind) -> String {
    let mut schema = match kind {
        SchemaKind::Rules => schemars::schema_for!(crate::rules::model::RuleFile),
        SchemaKind::Tests => schemars::schema_for!(crate::rules::testing::TestFile),
        SchemaKind::Config => schemars::schema_for!(crate::config::Config),
    };
    schema.insert(
        "$id".to_owned(),
        format!("{SCHEMA_BASE_URL}{}", kind.file_name()).into(),
    );
    serde_json::to_string_pretty(&schema).expect("a schema always serializes")
}

/// Prints the schema.
pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    println!("{}", schema_json(args.kind));
    Ok(ExitCode::SUCCESS)
}
