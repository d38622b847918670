//! No code. This package exists for its `Cargo.toml`: see its description.
