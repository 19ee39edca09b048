//! sf-policy's integration tests: one binary, a module per area.

mod check;
mod cli;
mod decide;
mod real_alerts;
mod support;
