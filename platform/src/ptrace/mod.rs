//! The ptrace platform (being written).
