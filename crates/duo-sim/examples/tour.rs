//! A tour of the Duo client against the simulator, with no Duo tenant and no
//! network: `cargo run -p duo-sim --example tour`.
//!
//! Every request below is signed by `duo-admin` (signature v5, HMAC-SHA512)
//! and verified by the simulator exactly as Duo would verify it.

use duo_admin::{DuoClient, DuoConfig, DuoError, Secret, SigVersion, UserFields};
use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};

fn client(sim: &DuoSim, skey: &str, version: SigVersion) -> Result<DuoClient, DuoError> {
    let cfg = sim.config();
    let mut c = DuoConfig::new(cfg.host.clone(), cfg.ikey.clone(), Secret::new(skey));
    c.base_url = Some(sim.base_url());
    c.sig_version = version;
    DuoClient::new(c)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = DuoSim::start().await;
    println!(
        "Duo simulator listening on {} (signed host {})",
        sim.base_url(),
        sim.config().host
    );
    sim.seed(Seed {
        groups: vec![SeedGroup {
            name: "engineering".into(),
            desc: "okta:00gENG".into(),
            ..SeedGroup::default()
        }],
        users: vec![SeedUser {
            username: "alice@example.com".into(),
            realname: "Alice Example".into(),
            groups: vec!["engineering".into()],
            phones: 2,
            webauthn: 1,
            bypass_codes: 5,
            ..SeedUser::default()
        }],
    });
    let duo = client(&sim, &sim.config().skey, SigVersion::V5)?;

    println!("\n1. Create a user, keeping the IdP's id in an alias slot");
    let jane = duo
        .create_user(&UserFields {
            username: Some("jane.doe@example.com".into()),
            realname: Some("Jane Doe".into()),
            email: Some("jane.doe@example.com".into()),
            aliases: [None, None, None, Some("okta:00uJANE0000000001".into())],
            ..UserFields::default()
        })
        .await?;
    println!("   created {} ({})", jane.username, jane.user_id);

    println!("\n2. Find her again by the IdP id alone (username lookups match aliases)");
    let found = duo.find_user_by_username("okta:00uJANE0000000001").await?;
    println!("   found {:?}", found.map(|u| u.username));

    println!("\n3. Add her to a group, found by paging the group list once");
    let groups = duo.list_groups().collect_all().await?;
    if let Some(eng) = groups.iter().find(|g| g.name == "engineering") {
        duo.add_user_to_group(&jane.user_id, &eng.group_id).await?;
    }
    println!(
        "   jane's groups: {:?}",
        sim.user_by_username("jane.doe@example.com")
            .map(|u| u.groups)
    );

    println!("\n4. Reset Alice's MFA: remove her phones, WebAuthn credentials and bypass codes");
    if let Some(alice) = duo.find_user_by_username("alice@example.com").await? {
        let id = &alice.user_id;
        for phone in duo.list_user_phones(id).await? {
            duo.detach_phone(id, &phone.phone_id).await?;
        }
        for cred in duo.list_user_webauthn(id).await? {
            duo.delete_webauthn(&cred.webauthnkey).await?;
        }
        for code in duo.list_user_bypass_codes(id).await? {
            duo.delete_bypass_code(&code.bypass_code_id).await?;
        }
        let after = sim.user_by_username("alice@example.com");
        if let Some(a) = after {
            println!(
                "   alice: {} phones, {} webauthn, {} bypass codes; still {} in {:?}",
                a.phones.len(),
                a.webauthncredentials.len(),
                a.bypass_codes.len(),
                a.status,
                a.groups
            );
        }
    }

    println!("\n5. A request signed with the wrong secret key is refused, as Duo would");
    let forged = client(
        &sim,
        "not-the-secret-key-at-all-0000000000000",
        SigVersion::V5,
    )?;
    match forged.find_user_by_username("alice@example.com").await {
        Err(e) => println!("   {e}"),
        Ok(_) => println!("   unexpectedly accepted"),
    }

    println!("\n6. The simulator's call log (what a test can count)");
    let mut counts: Vec<(String, usize)> = Vec::new();
    for call in sim.calls() {
        let key = format!("{} -> {}", call.route, call.status);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    for (route, n) in counts {
        println!("   {n:>3}  {route}");
    }
    println!("\nClient counters: {:?}", duo.stats());
    sim.shutdown().await;
    Ok(())
}
