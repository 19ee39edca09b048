fn main() {
    std::process::exit(indexer_sim::cli_main(std::env::args_os()))
}
