//! Compression selector and MADDPG resource allocator.

pub mod compression;
