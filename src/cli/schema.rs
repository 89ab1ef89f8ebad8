//! `reflex schema`: the JSON Schema of rule files and of rule test files, for editors and CI.

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
    let schema = match kind {
        SchemaKind::Rules => schemars::schema_for!(crate::rules::model::RuleFile),
        SchemaKind::Tests => schemars::schema_for!(crate::rules::testing::TestFile),
    };
    serde_json::to_string_pretty(&schema).expect("a schema always serializes")
}

/// Prints the schema.
pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    println!("{}", schema_json(args.kind));
    Ok(ExitCode::SUCCESS)
}
