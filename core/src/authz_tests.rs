use proptest::prelude::*;

use super::*;

fn id(cn: &str) -> Identity {
    Identity::from_common_name(cn).unwrap()
}

fn ep<'a>(tenant: &'a str, host: &'a str) -> Object<'a> {
    Object::Endpoint {
        id: "e1",
        tenant,
        host,
    }
}

#[test]
fn common_names_parse_to_identities_and_print_back() {
    let cases = [
        ("admin", Identity::Admin),
        ("reader", Identity::Reader),
        ("tenant:t1", Identity::Tenant("t1".into())),
        ("host:h-1.rack0", Identity::Host("h-1.rack0".into())),
        ("service:ipam", Identity::Service("ipam".into())),
        // Names may hold ':'; only the first one separates the kind.
        ("tenant:a:b", Identity::Tenant("a:b".into())),
    ];
    for (cn, want) in cases {
        assert_eq!(Identity::from_common_name(cn), Ok(want.clone()), "{cn}");
        assert_eq!(want.to_string(), cn);
    }
}

#[test]
fn unknown_or_malformed_common_names_are_refused() {
    for cn in ["", "root", "Admin", "tenant", "tenants:t1", "romanactl"] {
        assert!(
            matches!(
                Identity::from_common_name(cn),
                Err(IdentityError::Unknown(_))
            ),
            "{cn:?}"
        );
    }
    for cn in ["tenant:", "host:a/b", "tenant:a b"] {
        assert!(
            matches!(
                Identity::from_common_name(cn),
                Err(IdentityError::BadName { .. })
            ),
            "{cn:?}"
        );
    }
}

#[test]
fn a_long_common_name_is_quoted_by_a_short_prefix() {
    let cn = "x".repeat(10_000);
    let err = Identity::from_common_name(&cn).unwrap_err().to_string();
    assert!(err.len() < 200, "{err}");
}

#[test]
fn refusals_name_the_identity_the_verb_and_the_object() {
    let err = decide(
        &id("tenant:t2"),
        &Action::new(Verb::Update, Object::Tenant("t1")),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "tenant:t2 may not update tenant t1");
    let err = decide(&id("host:h2"), &Action::new(Verb::Release, ep("t1", "h1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host:h2 may not release endpoint e1 (tenant t1, host h1)"
    );
    let err = decide(
        &id("reader"),
        &Action::new(
            Verb::Apply,
            Object::Policy {
                tenant: None,
                name: "p",
            },
        ),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "reader may not apply Romana-form policy p");
}

/// (identity, verb, object, allowed): the table the services' tests follow too.
#[test]
fn role_table() {
    use Verb::*;
    let k8s = |t| Object::Policy {
        tenant: Some(t),
        name: "np",
    };
    let romana = Object::Policy {
        tenant: None,
        name: "p",
    };
    let seg = |t| Object::Segment {
        tenant: t,
        name: "s",
    };
    let cases: Vec<(&str, Verb, Object, bool)> = vec![
        ("admin", Update, Object::Isolation("t1"), true),
        ("admin", Apply, romana, true),
        ("service:ipam", Delete, Object::Host("h1"), true),
        ("reader", Read, ep("t1", "h1"), true),
        ("reader", Read, romana, true),
        ("reader", Create, Object::Tenant("t1"), false),
        ("reader", Allocate, ep("t1", "h1"), false),
        // tenant
        ("tenant:t1", Read, Object::Config, true),
        ("tenant:t1", Read, Object::Services, true),
        ("tenant:t1", Update, Object::Config, false),
        ("tenant:t1", Read, Object::Tenant("t1"), true),
        ("tenant:t1", Update, Object::Tenant("t1"), true),
        ("tenant:t1", Create, Object::Tenant("t1"), false),
        ("tenant:t1", Delete, Object::Tenant("t1"), false),
        ("tenant:t1", Read, Object::Tenant("t2"), false),
        ("tenant:t1", Update, Object::Isolation("t1"), false),
        ("tenant:t1", Create, seg("t1"), true),
        ("tenant:t1", Delete, seg("t1"), true),
        ("tenant:t1", Create, seg("t2"), false),
        ("tenant:t1", Read, seg("t2"), false),
        ("tenant:t1", Allocate, ep("t1", "h9"), true),
        ("tenant:t1", Release, ep("t2", "h1"), false),
        ("tenant:t1", Read, ep("t2", "h1"), false),
        ("tenant:t1", Apply, k8s("t1"), true),
        ("tenant:t1", Apply, k8s("t2"), false),
        ("tenant:t1", Apply, romana, false),
        ("tenant:t1", Read, romana, false),
        ("tenant:t1", Read, Object::Host("h1"), false),
        ("tenant:t1", Read, Object::Fabric, false),
        ("tenant:t1", Read, Object::HostStatus("h1"), false),
        (
            "tenant:t1",
            Read,
            Object::Explain {
                from: Some("t1"),
                to: Some("t1"),
            },
            true,
        ),
        (
            "tenant:t1",
            Read,
            Object::Explain {
                from: Some("t1"),
                to: None,
            },
            false,
        ),
        // host
        ("host:h1", Read, Object::Config, true),
        ("host:h1", Read, Object::Host("h2"), true),
        ("host:h1", Read, Object::Fabric, true),
        ("host:h1", Read, Object::Tenant("t1"), true),
        ("host:h1", Read, seg("t1"), true),
        ("host:h1", Create, seg("t1"), false),
        ("host:h1", Update, Object::Tenant("t1"), false),
        ("host:h1", Create, Object::Host("h1"), false),
        ("host:h1", Delete, Object::Host("h1"), false),
        ("host:h1", Allocate, ep("t1", "h1"), true),
        ("host:h1", Update, ep("t1", "h1"), true),
        ("host:h1", Release, ep("t1", "h1"), true),
        ("host:h1", Read, ep("t1", "h1"), true),
        ("host:h1", Allocate, ep("t1", "h2"), false),
        ("host:h1", Read, ep("t1", "h2"), false),
        ("host:h1", Update, Object::HostStatus("h1"), true),
        ("host:h1", Update, Object::HostStatus("h2"), false),
        ("host:h1", Read, k8s("t1"), false),
        ("host:h1", Apply, k8s("t1"), false),
    ];
    for (cn, verb, object, want) in cases {
        let action = Action::new(verb, object);
        assert_eq!(
            allows(&id(cn), &action),
            want,
            "{cn} {verb} {object}: expected {}",
            if want { "allowed" } else { "refused" }
        );
    }
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["t1", "t2", "h1", "h2", "a:b"]).prop_map(String::from)
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        Just(Identity::Admin),
        Just(Identity::Reader),
        name().prop_map(Identity::Tenant),
        name().prop_map(Identity::Host),
        name().prop_map(Identity::Service),
    ]
}

fn verb() -> impl Strategy<Value = Verb> {
    prop::sample::select(Verb::ALL.to_vec())
}

/// Owned parts of an object, so that proptest can generate them.
#[derive(Clone, Debug)]
enum Owned {
    Config,
    Services,
    Host(String),
    Fabric,
    HostStatus(String),
    Tenant(String),
    Isolation(String),
    Segment(String),
    Endpoint(String, String),
    Policy(Option<String>),
    Explain(Option<String>, Option<String>),
}

impl Owned {
    fn object(&self) -> Object<'_> {
        match self {
            Owned::Config => Object::Config,
            Owned::Services => Object::Services,
            Owned::Host(h) => Object::Host(h),
            Owned::Fabric => Object::Fabric,
            Owned::HostStatus(h) => Object::HostStatus(h),
            Owned::Tenant(t) => Object::Tenant(t),
            Owned::Isolation(t) => Object::Isolation(t),
            Owned::Segment(t) => Object::Segment {
                tenant: t,
                name: "s",
            },
            Owned::Endpoint(t, h) => Object::Endpoint {
                id: "e",
                tenant: t,
                host: h,
            },
            Owned::Policy(t) => Object::Policy {
                tenant: t.as_deref(),
                name: "p",
            },
            Owned::Explain(f, t) => Object::Explain {
                from: f.as_deref(),
                to: t.as_deref(),
            },
        }
    }

    /// The tenant the object belongs to, if it belongs to exactly one.
    fn tenant(&self) -> Option<&str> {
        match self {
            Owned::Tenant(t) | Owned::Isolation(t) | Owned::Segment(t) => Some(t),
            Owned::Endpoint(t, _) => Some(t),
            Owned::Policy(t) => t.as_deref(),
            _ => None,
        }
    }
}

fn object() -> impl Strategy<Value = Owned> {
    prop_oneof![
        Just(Owned::Config),
        Just(Owned::Services),
        name().prop_map(Owned::Host),
        Just(Owned::Fabric),
        name().prop_map(Owned::HostStatus),
        name().prop_map(Owned::Tenant),
        name().prop_map(Owned::Isolation),
        name().prop_map(Owned::Segment),
        (name(), name()).prop_map(|(t, h)| Owned::Endpoint(t, h)),
        prop::option::of(name()).prop_map(Owned::Policy),
        (prop::option::of(name()), prop::option::of(name()))
            .prop_map(|(f, t)| Owned::Explain(f, t)),
    ]
}

proptest! {
    #[test]
    fn identities_round_trip_through_their_common_name(who in identity()) {
        prop_assert_eq!(Identity::from_common_name(&who.to_string()), Ok(who));
    }

    #[test]
    fn admin_and_services_may_do_anything(v in verb(), o in object(), kind in name()) {
        prop_assert!(allows(&Identity::Admin, &Action::new(v, o.object())));
        prop_assert!(allows(&Identity::Service(kind), &Action::new(v, o.object())));
    }

    #[test]
    fn reader_reads_everything_and_changes_nothing(v in verb(), o in object()) {
        prop_assert_eq!(allows(&Identity::Reader, &Action::new(v, o.object())), !v.is_change());
    }

    #[test]
    fn a_tenant_never_touches_another_tenants_object(own in name(), v in verb(), o in object()) {
        if let Some(t) = o.tenant() {
            if t != own {
                prop_assert!(!allows(&Identity::Tenant(own.clone()), &Action::new(v, o.object())));
            }
        }
    }

    #[test]
    fn only_admin_changes_isolation_or_romana_policies(who in identity(), v in verb(), t in name()) {
        let privileged = matches!(who, Identity::Admin | Identity::Service(_));
        let isolation = Action::new(v, Object::Isolation(&t));
        let romana = Action::new(v, Object::Policy { tenant: None, name: "p" });
        if v.is_change() {
            prop_assert_eq!(allows(&who, &isolation), privileged);
            prop_assert_eq!(allows(&who, &romana), privileged);
        }
    }

    #[test]
    fn a_host_changes_only_its_own_endpoints_and_status(own in name(), v in verb(), o in object()) {
        let allowed = allows(&Identity::Host(own.clone()), &Action::new(v, o.object()));
        if v.is_change() && allowed {
            let mine = match &o {
                Owned::Endpoint(_, h) | Owned::HostStatus(h) => h == &own,
                _ => false,
            };
            prop_assert!(mine, "host:{own} may {v} {}", o.object());
        }
    }

    #[test]
    fn a_refusal_names_identity_and_object(who in identity(), v in verb(), o in object()) {
        let action = Action::new(v, o.object());
        if let Err(denied) = decide(&who, &action) {
            let text = denied.to_string();
            prop_assert!(text.starts_with(&who.to_string()), "{}", text);
            prop_assert!(text.ends_with(&o.object().to_string()), "{}", text);
        }
    }
}
