//! Compression selector and MADDPG resource allocator.
