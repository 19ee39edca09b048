//! The `signalfoundry` binary: parse the command line, run, map the outcome to an exit code.

// mimalloc: parsing and serializing hundreds of thousands of small JSON documents is
// allocation-bound, and glibc's malloc spent a fifth of the poller's time consolidating chunks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    signalfoundry::cmd::main()
}
