//! aofvault: TODO crate map
pub mod cli;
