//! One module per vendor: typed requests and responses, one function per documented operation, and
//! every documented response code mapped to what pasarela does with it.

pub mod danaconnect;
pub mod http;
