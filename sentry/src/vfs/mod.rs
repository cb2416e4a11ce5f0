//! Virtual filesystem: dentries, mounts, path resolution, open file descriptions and the
//! operations files implement.
//!
//! Filesystems (in [`crate::fs`]) implement [`Inode`]; [`walk::Resolver`] turns paths into
//! [`Dentry`]s one component at a time; [`OpenFile`] is what an fd points to.

pub mod context;
pub mod dir;
pub mod file;
pub mod host;
pub mod inode;
pub mod inotify;
pub mod lock;
pub mod mount;
pub mod walk;

pub use context::{Context, JobIds, ProcessGroups};
pub use file::{FileOps, OpenFile, Stat};
pub use inode::{Caller, DirEntry, FileType, FsStats, Inode, NewAttrs, NewNode, SetAttr, TaskIds};
pub use mount::{Dentry, FsContext, Mount, MountNamespace};
pub use walk::Resolver;
