//! Purposes: the controlled vocabulary of why a grantee reads, each mapped to one W3C Data
//! Privacy Vocabulary (DPV 2.x, <https://w3id.org/dpv>) purpose for the ODRL export.
//!
//! | purpose | DPV concept | note |
//! |---|---|---|
//! | `public_service` | `dpv:ImprovePublicServices` | |
//! | `mobility_planning` | `dpv:ImproveTransportMobility` | |
//! | `environmental_monitoring` | `dpv:PublicBenefit` | core DPV has no narrower environmental term; `CombatClimateChange` would overstate air or noise monitoring |
//! | `research` | `dpv:ResearchAndDevelopment` | |
//! | `statistics` | `dpv:ProvideOfficialStatistics` | |
//! | `open_data` | `dpv:DataAltruism` | closest core concept: voluntary sharing for the general interest |
//! | `billing` | `dpv:PaymentManagement` | |
//!
//! The mapping is one-to-one, so an exported agreement imports back to the same purposes. It
//! documents meaning for readers outside Beffroi; the decision compares our own words, never
//! the DPV hierarchy.

use crate::vocabulary::vocabulary;

/// The DPV namespace.
pub const DPV_NS: &str = "https://w3id.org/dpv#";

vocabulary!(
    /// Why a grantee reads: an agreement lists the purposes it allows, a request states one.
    Purpose, "purpose" {
        /// Running or improving a public service of the grantor.
        PublicService => "public_service",
        /// Planning traffic, transport and mobility.
        MobilityPlanning => "mobility_planning",
        /// Monitoring the environment (air, noise, water, weather).
        EnvironmentalMonitoring => "environmental_monitoring",
        /// Research and development.
        Research => "research",
        /// Official statistics.
        Statistics => "statistics",
        /// Publication as open data.
        OpenData => "open_data",
        /// Billing for a service (metering).
        Billing => "billing",
    }
);

impl Purpose {
    /// The DPV concept's local name (after `dpv:`).
    pub const fn dpv_name(self) -> &'static str {
        match self {
            Purpose::PublicService => "ImprovePublicServices",
            Purpose::MobilityPlanning => "ImproveTransportMobility",
            Purpose::EnvironmentalMonitoring => "PublicBenefit",
            Purpose::Research => "ResearchAndDevelopment",
            Purpose::Statistics => "ProvideOfficialStatistics",
            Purpose::OpenData => "DataAltruism",
            Purpose::Billing => "PaymentManagement",
        }
    }

    /// The full DPV IRI, e.g. `https://w3id.org/dpv#ResearchAndDevelopment`.
    pub fn dpv_iri(self) -> String {
        format!("{DPV_NS}{}", self.dpv_name())
    }

    /// The purpose mapped to a DPV IRI, full or compact (`dpv:ResearchAndDevelopment`).
    pub fn from_dpv_iri(iri: &str) -> Option<Self> {
        let name = iri
            .strip_prefix(DPV_NS)
            .or_else(|| iri.strip_prefix("dpv:"))?;
        <Self as crate::vocabulary::Term>::ALL
            .iter()
            .copied()
            .find(|purpose| purpose.dpv_name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Term;

    #[test]
    fn dpv_mapping_is_one_to_one() {
        for purpose in Purpose::ALL {
            assert_eq!(Purpose::from_dpv_iri(&purpose.dpv_iri()), Some(*purpose));
            let compact = format!("dpv:{}", purpose.dpv_name());
            assert_eq!(Purpose::from_dpv_iri(&compact), Some(*purpose));
        }
        assert_eq!(
            Purpose::from_dpv_iri("https://w3id.org/dpv#Marketing"),
            None
        );
    }
}
