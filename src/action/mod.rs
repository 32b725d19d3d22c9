//! Actions on alerts (issue #17): the step after output, off the hot path.
//!
//! Input: the closed bins and alerts the output thread writes (an
//! [`ActionSink`] wraps the JSON sink). Output: commands run on an action
//! thread of their own, with the alert line on stdin and its key fields in
//! `MXW_*` variables, and an `mxwatch.action` line for every run, undo, dry
//! run and refusal. The capture and classifier threads never wait for an
//! action: jobs go over a bounded channel, and a full one refuses the job.
//!
//! Safety: `mode = "log"` (and `--dry-run`) runs nothing and writes what
//! would have run; the `[actions] allowlist` is never acted on; at most
//! `max_per_minute` runs (packet time) whatever the number of alerts; every
//! command has a timeout after which its process group is killed.
//! [`plan::Planner`] decides (plain values, packet time), [`runner`] runs.

pub mod config;
pub mod plan;
pub mod runner;
pub mod sink;

pub use config::{ActionConfig, ActionsConfig, Mode, Net, Target, Trigger};
pub use plan::{Decision, Job, Planner};
pub use sink::ActionSink;

#[cfg(test)]
mod tests;
