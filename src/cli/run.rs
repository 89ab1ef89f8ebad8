//! `reflex run`: the controller's main job. PLACEHOLDER until the services helper lands it.

/// Arguments of `reflex run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Runs the controller.
pub async fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("reflex run: not implemented yet")
}
