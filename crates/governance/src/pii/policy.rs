//! Policies (what to do with each kind of entity, per direction) and their application:
//! redaction labels, request-scoped pseudonyms with their mapping, blocking, and the
//! reverse step for pseudonyms.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::redacted::Redacted;
use super::{detect_with_limit, Entity, EntityKind, PiiError, DEFAULT_MAX_INPUT_BYTES};

/// What happens to an entity of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leave the value in place.
    Allow,
    /// Replace it with `[LABEL]`.
    Redact,
    /// Replace it with `<LABEL_n>`; the mapping back is returned to the caller.
    Pseudonymize,
    /// Refuse the whole text.
    Block,
}

/// Where text flows; each direction has its own policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Prompts and request payloads on their way to a model.
    Input,
    /// Model answers on their way to the client.
    Output,
    /// Anything written to logs or the audit trail.
    Logs,
}

/// The policy for one direction: an action per entity kind, a default for kinds not
/// listed, and the input size cap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    #[serde(default = "default_action")]
    pub default: Action,
    #[serde(default)]
    pub actions: BTreeMap<EntityKind, Action>,
    /// Inputs above this size are refused with [`PiiError::InputTooLarge`].
    #[serde(default = "default_max_input_bytes")]
    pub max_input_bytes: usize,
}

fn default_action() -> Action {
    Action::Redact
}

fn default_max_input_bytes() -> usize {
    DEFAULT_MAX_INPUT_BYTES
}

impl Policy {
    pub fn new(default: Action) -> Policy {
        Policy {
            default,
            actions: BTreeMap::new(),
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }

    /// Redacts every kind; the safe choice where nothing else is configured.
    pub fn redact_all() -> Policy {
        Policy::new(Action::Redact)
    }

    pub fn with(mut self, kind: EntityKind, action: Action) -> Policy {
        self.actions.insert(kind, action);
        self
    }

    pub fn with_max_input_bytes(mut self, max_input_bytes: usize) -> Policy {
        self.max_input_bytes = max_input_bytes;
        self
    }

    pub fn action(&self, kind: EntityKind) -> Action {
        self.actions.get(&kind).copied().unwrap_or(self.default)
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::redact_all()
    }
}

/// A tenant's policies for the three directions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicySet {
    #[serde(default)]
    pub input: Policy,
    #[serde(default)]
    pub output: Policy,
    #[serde(default)]
    pub logs: Policy,
}

impl PolicySet {
    pub fn for_direction(&self, direction: Direction) -> &Policy {
        match direction {
            Direction::Input => &self.input,
            Direction::Output => &self.output,
            Direction::Logs => &self.logs,
        }
    }
}

/// Pseudonym → original value for one text or request. It holds the very data the
/// policy removed: store it only in the encrypted vault. `Debug` shows tokens only.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Mapping {
    entries: BTreeMap<String, String>,
}

impl Mapping {
    pub fn get(&self, token: &str) -> Option<&str> {
        self.entries.get(token).map(String::as_str)
    }

    /// `(token, original)` pairs in token order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(token, original)| (token.as_str(), original.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

/// The result of [`apply`]: the transformed text, the entities found (offsets into the
/// input text), and the pseudonym mapping (empty unless a kind was pseudonymized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub text: Redacted,
    pub entities: Vec<Entity>,
    pub mapping: Mapping,
}

/// Detects entities in `text` and applies `policy`. Blocking wins over everything: if any
/// entity's kind is blocked the text is refused, listing the blocked kinds only.
pub fn apply(text: &str, policy: &Policy) -> Result<Applied, PiiError> {
    PseudonymScope::new().apply(text, policy)
}

/// Pseudonym numbering shared by the texts of one request, such as the messages of a chat
/// completion, so that the same address is `<EMAIL_1>` in every message. Dropped with the
/// request; numbering is never shared across requests.
#[derive(Default)]
pub struct PseudonymScope {
    by_value: HashMap<(EntityKind, String), String>,
    next_number: BTreeMap<EntityKind, usize>,
    mapping: Mapping,
}

impl PseudonymScope {
    pub fn new() -> PseudonymScope {
        PseudonymScope::default()
    }

    /// Like [`apply`], numbering pseudonyms across every text of this scope.
    /// `Applied::mapping` holds the tokens of this text; [`PseudonymScope::mapping`] all.
    pub fn apply(&mut self, text: &str, policy: &Policy) -> Result<Applied, PiiError> {
        apply_in_scope(text, policy, self)
    }

    /// Every token issued in this scope, for the vault.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn into_mapping(self) -> Mapping {
        self.mapping
    }

    /// The same value (compared after normalisation, so `+1 212 555 0123` and
    /// `+1-212-555-0123` match) gets the same token; numbers count per kind from 1.
    fn token_for(&mut self, kind: EntityKind, value: &str) -> String {
        let key = (kind, normalise(kind, value));
        if let Some(token) = self.by_value.get(&key) {
            return token.clone();
        }
        let number = self.next_number.entry(kind).or_insert(0);
        *number += 1;
        let token = format!("<{}_{}>", kind.label(), number);
        self.mapping.entries.insert(token.clone(), value.to_owned());
        self.by_value.insert(key, token.clone());
        token
    }
}

impl fmt::Debug for PseudonymScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PseudonymScope")
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

fn apply_in_scope(
    text: &str,
    policy: &Policy,
    scope: &mut PseudonymScope,
) -> Result<Applied, PiiError> {
    let entities = detect_with_limit(text, policy.max_input_bytes)?;
    let blocked: BTreeSet<EntityKind> = entities
        .iter()
        .map(|entity| entity.kind)
        .filter(|&kind| policy.action(kind) == Action::Block)
        .collect();
    if !blocked.is_empty() {
        return Err(PiiError::Blocked {
            kinds: blocked.into_iter().collect(),
        });
    }
    let mut mapping = Mapping::default();
    let mut output = String::with_capacity(text.len());
    let mut copied_to = 0;
    for entity in &entities {
        let before = text
            .get(copied_to..entity.start)
            .ok_or(PiiError::Internal("entity offsets out of order"))?;
        let value = text
            .get(entity.start..entity.end)
            .ok_or(PiiError::Internal("entity offsets out of range"))?;
        output.push_str(before);
        match policy.action(entity.kind) {
            Action::Allow => output.push_str(value),
            Action::Redact => {
                output.push('[');
                output.push_str(entity.kind.label());
                output.push(']');
            }
            Action::Pseudonymize => {
                let token = scope.token_for(entity.kind, value);
                let original = scope.mapping.get(&token).unwrap_or(value).to_owned();
                output.push_str(&token);
                mapping.entries.insert(token, original);
            }
            Action::Block => return Err(PiiError::Internal("blocked entity reached rewriting")),
        }
        copied_to = entity.end;
    }
    let rest = text
        .get(copied_to..)
        .ok_or(PiiError::Internal("entity offsets out of range"))?;
    output.push_str(rest);
    Ok(Applied {
        text: Redacted::new(output),
        entities,
        mapping,
    })
}

/// Puts the originals back for every `<LABEL_n>` token found in `mapping`; unknown
/// tokens are left as they are. Callers must hold the `pii:reveal` permission.
pub fn reidentify(text: &str, mapping: &Mapping) -> String {
    static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"<[A-Z][A-Z_]*_[0-9]+>").expect("pseudonym pattern must compile: this is a bug")
    });
    TOKEN
        .replace_all(text, |captures: &regex::Captures<'_>| {
            let token = &captures[0];
            mapping.get(token).unwrap_or(token).to_owned()
        })
        .into_owned()
}

fn normalise(kind: EntityKind, value: &str) -> String {
    match kind {
        EntityKind::Email => value.to_lowercase(),
        EntityKind::Secret => value.to_owned(),
        EntityKind::Ip => value.to_ascii_lowercase(),
        _ => value
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect(),
    }
}
