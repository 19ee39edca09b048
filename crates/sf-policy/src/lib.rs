//! sf-policy (skeleton; being written)
