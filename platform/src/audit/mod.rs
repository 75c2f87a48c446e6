//! The platform's side of the tamper-evident audit log (issue #8): its signing key
//! ([`PlatformAuditKey`]), the checkpointer task ([`Checkpointer`]) started by the server, and
//! the `beffroi audit …` commands ([`AuditCommand`]).
//!
//! The entries themselves are written where things happen: the API's changes and reads
//! (`beffroi_api::audit`), the admin commands ([`crate::admin`]).

mod checkpointer;
mod command;
mod key;

pub use checkpointer::{Checkpointer, TenantOutcome};
pub use command::{run, AuditCommand, CommandError};
pub use key::{
    public_keys_pem, read_public_keys, AuditKeyError, PlatformAuditKey, KEY_FILE, PUBLIC_KEYS_FILE,
};
