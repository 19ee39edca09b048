//! indexer-sim (skeleton; being written)
