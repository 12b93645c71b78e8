//! PLACEHOLDER (the owner replaces this whole file): entry points with their final signatures.
#![allow(unused_variables, dead_code)]

pub const OK: u8 = 0;
pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const VERIFY_FAILED: u8 = 3;
pub const REPO_UNREACHABLE: u8 = 4;
pub const REPO_EMPTY: u8 = 5;
pub const LEASE_HELD: u8 = 6;
pub const TARGET_NOT_EMPTY: u8 = 7;
pub fn code_for(err: &anyhow::Error) -> u8 { ERROR }
