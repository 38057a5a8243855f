//! Parts of the serving collector that belong to no library module:
//! the error groups mined from the stored log records ([`error_groups`]).

pub mod error_groups;
