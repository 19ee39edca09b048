//! Integration tests of the indexer simulator: a real HTTPS client (reqwest with rustls) that
//! pins the simulator's generated CA, on loopback only.

mod auth_and_info;
mod cli;
mod common;
mod corpus;
mod faults;
mod fixtures;
mod live;
mod pit;
mod search;
mod throughput;
