//! sled storage (in progress)
