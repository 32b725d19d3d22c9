//! Live capture (written with `mxwatch live`).

use anyhow::Result;

use crate::cli::LiveArgs;

pub fn live(_args: &LiveArgs) -> Result<()> {
    anyhow::bail!("live capture is not built yet")
}
