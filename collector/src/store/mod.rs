//! The collector's series store: an in-memory head of compressed chunks
//! with an inverted label index, a write-ahead log and snapshots.

pub mod chunk;
pub mod head;
pub mod wal;
