//! Notices: the changes a node's hub hears of from this node's API and alert engine (alarm
//! changes, gateway states, registry and rule changes), offered to whoever relays them to the
//! other nodes of a cluster ([`crate::Hub::notices`]); a relayed notice is applied with
//! [`crate::Hub::apply_notice`], which does not offer it again.

use beffroi_protocol::TenantId;
use beffroi_store::{Alarm, GatewayRecord};
use serde::{Deserialize, Serialize};

/// Notices buffered for a relay that falls behind before the oldest are skipped.
pub const NOTICES: usize = 1024;

/// A change other nodes' live views (and alert engines) must hear of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// An alarm's new state.
    Alarm {
        /// The alarm as stored.
        alarm: Box<Alarm>,
    },
    /// A gateway's new state (enrolled, revoked…).
    Gateway {
        /// The gateway as stored.
        gateway: Box<GatewayRecord>,
    },
    /// A tenant's sensors or zones changed.
    Registry {
        /// The tenant.
        tenant: TenantId,
    },
    /// A tenant's alarm rules changed.
    Rules {
        /// The tenant.
        tenant: TenantId,
    },
}
