//! Compression selector and MADDPG resource allocator.
pub mod allocator;

pub mod compression;
