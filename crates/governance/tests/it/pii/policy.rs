//! Policy application: redaction labels, pseudonyms and their mapping, blocking, limits.

use governance::pii::{
    apply, redact_for_log, reidentify, Action, Direction, EntityKind, PiiError, Policy, PolicySet,
    PseudonymScope,
};

const TEXT: &str = "Mail a@example.com or A@Example.com, call +4930901820, card 4111 1111 1111 1111, mail b@example.org";

#[test]
fn redacts_with_labels() {
    let applied = apply(TEXT, &Policy::redact_all()).unwrap();
    assert_eq!(
        applied.text.as_str(),
        "Mail [EMAIL] or [EMAIL], call [PHONE], card [CARD], mail [EMAIL]"
    );
    assert_eq!(applied.entities.len(), 5);
    assert!(applied.mapping.is_empty());
}

#[test]
fn pseudonyms_are_stable_within_a_text_and_reversible() {
    let policy = Policy::new(Action::Pseudonymize).with(EntityKind::Card, Action::Redact);
    let applied = apply(TEXT, &policy).unwrap();
    assert_eq!(
        applied.text.as_str(),
        "Mail <EMAIL_1> or <EMAIL_1>, call <PHONE_1>, card [CARD], mail <EMAIL_2>"
    );
    assert_eq!(applied.mapping.len(), 3);
    assert_eq!(applied.mapping.get("<EMAIL_1>"), Some("a@example.com"));
    assert_eq!(applied.mapping.get("<EMAIL_2>"), Some("b@example.org"));
    // The mapping's Debug must not leak the originals into logs.
    assert!(!format!("{:?}", applied.mapping).contains("example"));
    let answer = "I wrote to <EMAIL_2> and <EMAIL_1>; <EMAIL_9> is unknown";
    assert_eq!(
        reidentify(answer, &applied.mapping),
        "I wrote to b@example.org and a@example.com; <EMAIL_9> is unknown"
    );
}

#[test]
fn numbering_restarts_per_text() {
    let policy = Policy::new(Action::Pseudonymize);
    let first = apply("x@example.com", &policy).unwrap();
    let second = apply("y@example.com", &policy).unwrap();
    assert_eq!(first.text.as_str(), "<EMAIL_1>");
    assert_eq!(second.text.as_str(), "<EMAIL_1>");
    assert_eq!(second.mapping.get("<EMAIL_1>"), Some("y@example.com"));
}

#[test]
fn allow_keeps_the_value() {
    let policy = Policy::redact_all().with(EntityKind::Email, Action::Allow);
    let applied = apply("a@example.com 192.168.0.1", &policy).unwrap();
    assert_eq!(applied.text.as_str(), "a@example.com [IP]");
}

#[test]
fn block_refuses_and_names_kinds_only() {
    let policy = Policy::redact_all()
        .with(EntityKind::Card, Action::Block)
        .with(EntityKind::Secret, Action::Block);
    let error = apply(TEXT, &policy).unwrap_err();
    assert_eq!(
        error,
        PiiError::Blocked {
            kinds: vec![EntityKind::Card]
        }
    );
    assert_eq!(error.code(), "pii_blocked");
    assert!(!error.to_string().contains("4111"));
    assert!(apply("nothing here", &policy).is_ok());
}

#[test]
fn oversized_input_fails_closed() {
    let policy = Policy::new(Action::Allow).with_max_input_bytes(16);
    let error = apply("a@example.com and more text", &policy).unwrap_err();
    assert_eq!(error, PiiError::InputTooLarge { len: 27, max: 16 });
    let logged = redact_for_log(&"x".repeat(2 << 20));
    assert_eq!(logged.as_str(), "[UNREDACTABLE: pii_input_too_large]");
}

#[test]
fn log_redaction() {
    assert_eq!(
        redact_for_log("user 13812345678 from 10.0.0.1").as_str(),
        "user [PHONE] from [IP]"
    );
}

#[test]
fn policies_deserialize_from_tenant_config() {
    let set: PolicySet = serde_json::from_str(
        r#"{"input": {"default": "allow", "actions": {"secret": "block", "email": "pseudonymize"}},
            "output": {"default": "redact"}}"#,
    )
    .unwrap();
    let input = set.for_direction(Direction::Input);
    assert_eq!(input.action(EntityKind::Secret), Action::Block);
    assert_eq!(input.action(EntityKind::Email), Action::Pseudonymize);
    assert_eq!(input.action(EntityKind::Phone), Action::Allow);
    assert_eq!(
        set.for_direction(Direction::Logs).action(EntityKind::Ip),
        Action::Redact
    );
}

#[test]
fn entities_serialize_for_the_api() {
    let applied = apply("ip 10.0.0.1", &Policy::redact_all()).unwrap();
    assert_eq!(
        serde_json::to_string(&applied.entities).unwrap(),
        r#"[{"type":"ip","start":3,"end":11}]"#
    );
}

#[test]
fn a_scope_numbers_across_the_texts_of_one_request() {
    let policy = Policy::new(Action::Pseudonymize);
    let mut scope = PseudonymScope::new();
    let first = scope.apply("from a@example.com", &policy).unwrap();
    let second = scope
        .apply("cc b@example.com, reply to A@example.com", &policy)
        .unwrap();
    assert_eq!(first.text.as_str(), "from <EMAIL_1>");
    assert_eq!(second.text.as_str(), "cc <EMAIL_2>, reply to <EMAIL_1>");
    assert_eq!(second.mapping.len(), 2);
    assert_eq!(second.mapping.get("<EMAIL_1>"), Some("a@example.com"));
    assert_eq!(scope.mapping().len(), 2);
}
