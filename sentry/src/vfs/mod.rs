//! Virtual filesystem: open file descriptions and the operations files implement.
//!
//! (Dentries, mounts and path resolution arrive with the filesystem work; today the sentry
//! has the file-description layer and host-fd-backed files for stdio.)

pub mod file;
pub mod host;

pub use file::{FileOps, OpenFile, Stat};
