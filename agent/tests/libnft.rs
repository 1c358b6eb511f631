//! The two ways the agent runs nftables, libnftables in process and the `nft` command,
//! against a real kernel inside a namespace: the library is used where it exists (always
//! under CI, where the nftables package brings it), both read the same table back, both
//! apply a batch whole or not at all, and both say what failed in nft's own words.

mod common;

use common::Netns;
use romana_agent::kernel::NftRunner;
use romana_agent::plan::NftObserved;
use romana_integration::require_netns;

const TABLE: &str = "table inet romana {
    set open_tenant {
        type ipv4_addr
        elements = { 10.0.64.1 }
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        iifname \"rmn*\" ip saddr @open_tenant accept
    }
}
";

fn runners(ns: &Netns) -> [(&'static str, NftRunner); 2] {
    [
        ("libnftables", NftRunner::new(Some(ns.name.clone()))),
        (
            "nft command",
            NftRunner::command_only(Some(ns.name.clone())),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn libnftables_is_used_and_applies_reads_and_fails_as_the_nft_command_does() {
    require_netns!("nft");
    let ns = Netns::create();
    let [(_, lib), (_, cmd)] = runners(&ns);
    assert!(lib.in_process(), "libnftables.so.1 could not be opened");
    assert!(!cmd.in_process());

    // No table yet: both say absent, not an error.
    for r in [&lib, &cmd] {
        assert!(matches!(r.observe().await.unwrap(), NftObserved::Absent));
        assert_eq!(r.list_text().await.unwrap(), None);
    }

    // Applied through the library, in the namespace (never the root's), read by both alike.
    lib.apply(TABLE).await.unwrap();
    let seen = ns.nft_table().expect("the table is in the namespace");
    assert!(seen.contains("10.0.64.1"), "{seen}");
    assert_eq!(
        lib.list_text().await.unwrap(),
        cmd.list_text().await.unwrap()
    );
    let (NftObserved::Table(a), NftObserved::Table(b)) =
        (lib.observe().await.unwrap(), cmd.observe().await.unwrap())
    else {
        panic!("both read the table as ours");
    };
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(format!("{a:?}").contains("10.0.64.1"), "{a:?}");
    for (how, r) in runners(&ns) {
        // A bad second statement: nothing of the batch applies, nft's message comes back.
        let err = r
            .apply(
                "add element inet romana open_tenant { 10.0.80.1 }\n\
                 add rule inet romana forward frobnicate\n",
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("frobnicate"), "{how}: {err}");
        // Deleting an absent element fails the whole batch too.
        let err = r
            .apply(
                "add element inet romana open_tenant { 10.0.96.1 }\n\
                 delete element inet romana open_tenant { 10.0.99.1 }\n",
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("No such file"), "{how}: {err}");
        let now = ns.nft_table().unwrap();
        assert_eq!(now, seen, "{how}: a failed batch changed the table");
    }

    // Many changes in a row through one context: each sees the one before.
    for i in 0..50u32 {
        lib.apply(&format!(
            "add element inet romana open_tenant {{ 10.1.0.{i} }}\n"
        ))
        .await
        .unwrap();
    }
    lib.apply("delete element inet romana open_tenant { 10.1.0.7 }\n")
        .await
        .unwrap();
    let text = cmd.list_text().await.unwrap().unwrap();
    assert!(
        text.contains("10.1.0.49") && !text.contains("10.1.0.7,"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_namespace_falls_back_to_the_command_which_then_says_so() {
    require_netns!("nft");
    let r = NftRunner::new(Some("romana-no-such-netns".into()));
    assert!(!r.in_process());
    assert!(r.apply(TABLE).await.is_err());
}
