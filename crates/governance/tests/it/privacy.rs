//! The privacy service on a real SQLite store and sealed blob store: per-tenant policies
//! in the request path, the vault and reveal, payload retention and purge, erasure of a
//! subject, and no personal data in the clear anywhere under the data dir.

use governance::pii::{Action, EntityKind, PiiError, Policy};
use governance::privacy::{Erasure, Privacy, PrivacyError, PrivacySettings, Subject};
use store::Store;
use types::TenantName;

const EMAIL: &str = "canary.alice@example.com";
const CARD: &str = "4111 1111 1111 1111";

struct Fixture {
    privacy: Privacy,
    store: Store,
    dir: tempfile::TempDir,
}

async fn fixture(tenants: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::sqlite_store(dir.path()).await;
    let keyring = crypto::envelope::MasterKeyring::new(crypto::envelope::MasterKey::generate(1));
    let blobs = blobstore::open(
        &blobstore::BlobConfig::Filesystem {
            root: dir.path().join("blobs"),
        },
        keyring,
    )
    .unwrap();
    for name in tenants {
        store.create_tenant(&tenant(name), false).await.unwrap();
    }
    let registry = registry::Registry::new(store.clone(), blobs);
    Fixture {
        privacy: Privacy::new(registry),
        store,
        dir,
    }
}

fn files_containing(dir: &std::path::Path, needles: &[&str]) -> Vec<(String, std::path::PathBuf)> {
    testkit::canary::files_containing(dir, needles).unwrap()
}

fn tenant(name: &str) -> TenantName {
    TenantName::try_from(name).unwrap()
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn set(fixture: &Fixture, name: &str, change: impl FnOnce(&mut PrivacySettings)) {
    let mut settings = PrivacySettings::default();
    change(&mut settings);
    fixture
        .privacy
        .set_settings(&tenant(name), settings)
        .await
        .unwrap();
}

#[tokio::test]
async fn defaults_pass_inputs_and_redact_logs() {
    let fixture = fixture(&["acme"]).await;
    let acme = tenant("acme");
    let settings = fixture.privacy.settings(&acme).await.unwrap();
    assert_eq!(settings, PrivacySettings::default());
    assert_eq!(settings.retention_secs, None);
    let mut request = fixture.privacy.begin(&acme, None).await.unwrap();
    let input = format!("mail {EMAIL}");
    let out = request.input(std::slice::from_ref(&input)).unwrap();
    assert_eq!(out[0].as_str(), input);
    assert_eq!(request.for_log(&input).as_str(), "mail [EMAIL]");
    request.require_checkable("token ids").unwrap();
    // Nothing to seal and nothing to store: no vault entry.
    let vault = request
        .finish("r1", "/v1/embeddings", || unreachable!())
        .await;
    assert_eq!(vault.unwrap(), None);
}

#[tokio::test]
async fn settings_that_would_leak_are_refused() {
    let fixture = fixture(&["acme"]).await;
    let acme = tenant("acme");
    for logs in [
        Policy::new(Action::Allow),
        Policy::redact_all().with(EntityKind::Email, Action::Pseudonymize),
    ] {
        let mut settings = PrivacySettings::default();
        settings.policies.logs = logs;
        let error = fixture
            .privacy
            .set_settings(&acme, settings)
            .await
            .unwrap_err();
        assert!(matches!(error, PrivacyError::Invalid(_)), "{error:?}");
    }
    for retention in [0, -5, i64::MAX] {
        let settings = PrivacySettings {
            retention_secs: Some(retention),
            ..PrivacySettings::default()
        };
        assert!(fixture.privacy.set_settings(&acme, settings).await.is_err());
    }
    let mut blocking_logs = PrivacySettings::default();
    blocking_logs.policies.logs = Policy::redact_all().with(EntityKind::Card, Action::Block);
    fixture
        .privacy
        .set_settings(&acme, blocking_logs.clone())
        .await
        .unwrap();
    assert_eq!(
        fixture.privacy.settings(&acme).await.unwrap(),
        blocking_logs
    );
    let request = fixture.privacy.begin(&acme, None).await.unwrap();
    assert_eq!(
        request.for_log(&format!("{EMAIL} {CARD}")).as_str(),
        "[WITHHELD: card]"
    );
    assert!(Subject::parse("").is_err());
    assert!(Subject::parse("a\nb").is_err());
    assert!(Subject::parse(&"x".repeat(257)).is_err());
    assert!(!format!("{:?}", Subject::parse("user-42").unwrap()).contains("42"));
}

#[tokio::test]
async fn input_policies_redact_block_and_refuse_token_ids() {
    let fixture = fixture(&["acme"]).await;
    let acme = tenant("acme");
    set(&fixture, "acme", |s| {
        s.policies.input = Policy::redact_all().with(EntityKind::Card, Action::Block);
    })
    .await;
    let mut request = fixture.privacy.begin(&acme, None).await.unwrap();
    let out = request
        .input(&texts(&[&format!("write to {EMAIL}"), "nothing here"]))
        .unwrap();
    assert_eq!(out[0].as_str(), "write to [EMAIL]");
    assert_eq!(out[1].as_str(), "nothing here");
    match request.input(&texts(&["fine", &format!("card {CARD}")])) {
        Err(PrivacyError::Pii(PiiError::Blocked { kinds })) => {
            assert_eq!(kinds, [EntityKind::Card])
        }
        other => panic!("expected a block, got {other:?}"),
    }
    assert!(matches!(
        request.require_checkable("token ids"),
        Err(PrivacyError::Unchecked(_))
    ));
    // Fails closed: an input over the engine's cap is an error, not passed through.
    set(&fixture, "acme", |s| {
        s.policies.input = Policy::new(Action::Allow).with_max_input_bytes(8);
    })
    .await;
    let mut request = fixture.privacy.begin(&acme, None).await.unwrap();
    assert!(matches!(
        request.input(&texts(&["longer than eight bytes"])),
        Err(PrivacyError::Pii(PiiError::InputTooLarge { .. }))
    ));
}

#[tokio::test]
async fn pseudonyms_are_sealed_in_the_vault_and_revealed_per_tenant() {
    let fixture = fixture(&["acme", "beta"]).await;
    let acme = tenant("acme");
    set(&fixture, "acme", |s| {
        s.policies.input = Policy::new(Action::Pseudonymize);
        s.policies.output = Policy::new(Action::Pseudonymize);
    })
    .await;
    let mut request = fixture.privacy.begin(&acme, None).await.unwrap();
    let out = request
        .input(&texts(&[&format!("from {EMAIL}"), &format!("card {CARD}")]))
        .unwrap();
    assert_eq!(out[0].as_str(), "from <EMAIL_1>");
    assert_eq!(out[1].as_str(), "card <CARD_1>");
    // The output shares the request's numbering: the same address, the same token.
    let answer = request
        .output(&texts(&[&format!("reply to {EMAIL}")]))
        .unwrap();
    assert_eq!(answer[0].as_str(), "reply to <EMAIL_1>");
    let vault = request
        .finish("r1", "/v1/embeddings", || unreachable!())
        .await
        .unwrap()
        .expect("a vault entry");
    assert!(vault.id.starts_with("pv_"), "{}", vault.id);

    let revealed = fixture
        .privacy
        .reveal(&acme, &vault.id, "<EMAIL_1> paid with <CARD_1>, <PHONE_1>")
        .await
        .unwrap();
    assert_eq!(revealed, format!("{EMAIL} paid with {CARD}, <PHONE_1>"));
    // Another tenant cannot reveal it, and an unknown id is the same answer.
    for (name, id) in [("beta", vault.id.as_str()), ("acme", "pv_unknown")] {
        assert!(matches!(
            fixture.privacy.reveal(&tenant(name), id, "<EMAIL_1>").await,
            Err(PrivacyError::NotFound(_))
        ));
    }
    assert!(files_containing(fixture.dir.path(), &[EMAIL]).is_empty());

    // Expired entries are not revealable, then purged.
    sqlx_exec(&fixture.store, "UPDATE pii_vault SET expires_at = 0").await;
    assert!(matches!(
        fixture.privacy.reveal(&acme, &vault.id, "<EMAIL_1>").await,
        Err(PrivacyError::NotFound(_))
    ));
    assert_eq!(
        fixture.privacy.purge_expired().await.unwrap(),
        Erasure {
            payloads: 0,
            vault_entries: 1
        }
    );
}

#[tokio::test]
async fn a_moved_vault_entry_does_not_open() {
    let fixture = fixture(&["acme"]).await;
    let acme = tenant("acme");
    set(&fixture, "acme", |s| {
        s.policies.input = Policy::new(Action::Pseudonymize)
    })
    .await;
    let mut ids = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let mut request = fixture.privacy.begin(&acme, None).await.unwrap();
        request.input(&texts(&[email])).unwrap();
        let vault = request.finish("r", "/x", || unreachable!()).await.unwrap();
        ids.push(vault.unwrap().id);
    }
    // Swap the sealed mappings of the two rows: each is bound to its own id.
    let sql = format!(
        "UPDATE pii_vault SET sealed = (SELECT sealed FROM pii_vault WHERE id = '{}') WHERE id = '{}'",
        ids[1], ids[0]
    );
    sqlx_exec(&fixture.store, &sql).await;
    assert!(matches!(
        fixture.privacy.reveal(&acme, &ids[0], "<EMAIL_1>").await,
        Err(PrivacyError::Integrity)
    ));
}

#[tokio::test]
async fn payloads_are_kept_sealed_for_the_retention_period_and_erased_by_subject() {
    let fixture = fixture(&["acme"]).await;
    let acme = tenant("acme");
    set(&fixture, "acme", |s| {
        s.policies.input = Policy::new(Action::Pseudonymize);
        s.retention_secs = Some(3600);
    })
    .await;
    let subject = Subject::parse("subject-canary-7").unwrap();
    for (subject, text) in [
        (Some(subject.clone()), format!("about {EMAIL}")),
        (Some(subject.clone()), format!("card {CARD}")),
        (None, "someone else".to_owned()),
    ] {
        let mut request = fixture.privacy.begin(&acme, subject).await.unwrap();
        let seen = request.input(std::slice::from_ref(&text)).unwrap();
        let stored = serde_json::json!({"input": seen[0].as_str()});
        request
            .finish("req", "/v1/embeddings", || stored)
            .await
            .unwrap();
    }
    let payloads = fixture.privacy.payloads(&acme).await.unwrap();
    assert_eq!(payloads.len(), 3);
    assert_eq!(payloads[0]["input"], "about <EMAIL_1>");
    assert!(payloads[0]["vault_id"].as_str().unwrap().starts_with("pv_"));
    assert_eq!(payloads[2]["input"], "someone else");
    // Neither the personal data nor the subject id is stored in the clear.
    let needles = [EMAIL, CARD, "subject-canary-7", "someone else"];
    let found = files_containing(fixture.dir.path(), &needles);
    assert!(found.is_empty(), "stored in the clear: {found:?}");

    let erased = fixture
        .privacy
        .erase_subject(&acme, &subject)
        .await
        .unwrap();
    assert_eq!(
        erased,
        Erasure {
            payloads: 2,
            vault_entries: 2
        }
    );
    let left = fixture.privacy.payloads(&acme).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["input"], "someone else");
    let again = fixture
        .privacy
        .erase_subject(&acme, &subject)
        .await
        .unwrap();
    assert_eq!(again, Erasure::default());

    // Retention: expired payloads disappear for readers, then from the database.
    sqlx_exec(&fixture.store, "UPDATE stored_payloads SET expires_at = 0").await;
    assert!(fixture.privacy.payloads(&acme).await.unwrap().is_empty());
    assert_eq!(fixture.privacy.purge_expired().await.unwrap().payloads, 1);
}

async fn sqlx_exec(store: &Store, sql: &str) {
    store::sqlx::query(sql).execute(store.pool()).await.unwrap();
}
