//! `ledgerd demo`: a sample loyalty program and months of generated traffic
//! run through the real engine into a fresh data directory, then what the
//! views show.

pub mod traffic;
