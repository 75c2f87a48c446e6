//! The closed vocabularies of an agreement's terms: what may be done ([`Action`]), at which
//! spatial granularity ([`SpatialLevel`]), with which aggregate functions ([`Function`]) and
//! which columns of a raw row ([`Field`]).

use crate::vocabulary::vocabulary;

vocabulary!(
    /// What an agreement lets the grantee do with the grantor's readings.
    Action, "action" {
        /// Read aggregates (per bucket and spatial unit) under the agreement's terms.
        ReadAggregate => "read_aggregate",
        /// Read raw rows; implies aggregating them under the same terms.
        ReadRaw => "read_raw",
    }
);

impl Action {
    /// Whether holding `self` gives at least what `other` gives: `read_raw` includes
    /// `read_aggregate` (whoever holds the rows can aggregate them).
    ///
    /// A permission for `self` covers a request for `other` when `self.includes(other)`; a
    /// prohibition of `p` forbids a request for `wanted` when `wanted.includes(p)` — so
    /// prohibiting aggregates also prohibits raw rows, never the reverse.
    pub fn includes(self, other: Action) -> bool {
        self == other || (self == Action::ReadRaw && other == Action::ReadAggregate)
    }
}

vocabulary!(
    /// The spatial unit of served data, finest first: `sensor` < `zone`.
    SpatialLevel, "spatial level" {
        /// One sensor (raw rows are always at this level).
        Sensor => "sensor",
        /// One zone of the grantor: the sensors registered in it, together.
        Zone => "zone",
    }
);

impl SpatialLevel {
    /// Whether an agreement whose finest level is `self` allows serving at `requested`
    /// (the same level or a coarser one).
    pub fn allows(self, requested: SpatialLevel) -> bool {
        requested >= self
    }
}

vocabulary!(
    /// An aggregate function a grantee may compute per cell.
    Function, "function" {
        /// Mean of the values.
        Avg => "avg",
        /// Smallest value.
        Min => "min",
        /// Largest value.
        Max => "max",
        /// Number of values.
        Count => "count",
        /// Sum of the values.
        Sum => "sum",
    }
);

vocabulary!(
    /// A column of a raw reading row that an agreement may let through.
    Field, "field" {
        /// When it was measured.
        Time => "time",
        /// The value.
        Value => "value",
        /// Its unit.
        Unit => "unit",
        /// The metric name.
        Metric => "metric",
        /// The sensor id (pseudonymised when the agreement says so).
        Sensor => "sensor",
        /// The sensor's zone.
        Zone => "zone",
        /// The gateway that sent it.
        Gateway => "gateway",
        /// The batch sequence number.
        Seq => "seq",
        /// When the platform received it.
        ReceivedAt => "received_at",
    }
);
