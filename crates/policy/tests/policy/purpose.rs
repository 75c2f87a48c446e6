//! Who and why: no agreement, another grantee or grantor, public grants, wrong purpose.

use beffroi_policy::{decide, Decision, DenyReason, Grantee, Purpose, TermSet};

use crate::support::{
    aggregate_agreement, aggregate_request, at, denied, partner, permitted, tenant,
};

#[test]
fn no_agreement_is_denied() {
    let decision = decide(&aggregate_request(), &[], at(0));
    assert_eq!(denied(&decision), DenyReason::NoAgreement);
    let Decision::Deny(deny) = decision else {
        unreachable!()
    };
    assert!(deny.message.contains("lyon"), "{}", deny.message);
    assert!(deny.agreement.is_none());
}

#[test]
fn agreements_for_someone_else_do_not_count() {
    let mut other_grantee = aggregate_agreement("air");
    other_grantee.grantee = partner("globex");
    let mut other_grantor = aggregate_agreement("air2");
    other_grantor.grantor = tenant("grenoble");
    let decision = decide(&aggregate_request(), &[other_grantee, other_grantor], at(0));
    assert_eq!(denied(&decision), DenyReason::NoAgreement);
}

#[test]
fn a_public_grant_covers_every_requester_but_a_named_one_only_its_grantee() {
    let mut public = aggregate_agreement("air");
    public.grantee = Grantee::Public;
    for requester in [
        Grantee::Public,
        partner("globex"),
        Grantee::Tenant(tenant("x")),
    ] {
        let request = beffroi_policy::AccessRequest {
            requester,
            ..aggregate_request()
        };
        let permit = permitted(decide(&request, std::slice::from_ref(&public), at(0)));
        assert_eq!(permit.grantee, Grantee::Public);
    }
    let request = beffroi_policy::AccessRequest {
        requester: Grantee::Public,
        ..aggregate_request()
    };
    let decision = decide(&request, &[aggregate_agreement("air")], at(0));
    assert_eq!(denied(&decision), DenyReason::NoAgreement);
}

#[test]
fn wrong_purpose_is_denied() {
    let mut agreement = aggregate_agreement("air");
    agreement.purposes = TermSet::from([Purpose::Research, Purpose::Statistics]);
    let request = beffroi_policy::AccessRequest {
        purpose: Purpose::Billing,
        ..aggregate_request()
    };
    let decision = decide(&request, &[agreement], at(0));
    assert_eq!(denied(&decision), DenyReason::WrongPurpose);
    let Decision::Deny(deny) = decision else {
        unreachable!()
    };
    assert!(
        deny.message.contains("research, statistics") && deny.message.contains("billing"),
        "{}",
        deny.message
    );
    assert_eq!(deny.agreement.unwrap().id.as_str(), "air");
}
