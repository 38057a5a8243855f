//! Parts of the serving collector that belong to no library module:
//! the error groups mined from the stored log records ([`error_groups`])
//! and the API's HTTP(S) serving loop ([`http`]).

pub mod error_groups;
pub mod http;
