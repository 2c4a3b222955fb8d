//! Bounds on names that hosts and placement both check, so that what a host accepts placement
//! accepts too.

/// Longest actor type name, in bytes.
pub const MAX_ACTOR_TYPE_BYTES: usize = 256;
/// Longest actor id, in bytes.
pub const MAX_ACTOR_ID_BYTES: usize = 1024;
/// Longest method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 1024;
/// Longest host id, app id or address, in bytes.
pub const MAX_HOST_FIELD_BYTES: usize = 1024;
/// Most actor types one host (and so one app) may register.
pub const MAX_ACTOR_TYPES_PER_HOST: usize = 1024;

/// Why an actor type name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeNameError {
    #[error("actor type names must not be empty")]
    Empty,
    #[error("actor type name is longer than {MAX_ACTOR_TYPE_BYTES} bytes")]
    TooLong,
}

/// Checks an actor type name as placement does.
pub fn validate_actor_type(name: &str) -> Result<(), TypeNameError> {
    if name.is_empty() {
        return Err(TypeNameError::Empty);
    }
    if name.len() > MAX_ACTOR_TYPE_BYTES {
        return Err(TypeNameError::TooLong);
    }
    Ok(())
}
