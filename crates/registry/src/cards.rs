//! Model cards: checking what a card may say, and the licence terms a card sets for
//! the tenants that use the model.
//!
//! The card lives on the model (licence terms cover every version); lineage is per
//! version and comes from the version's own `lineage.json`, which jobs write and the
//! version's manifest (and so its signature) covers.

use serde::{Deserialize, Serialize};
use store::{Caller, ModelCard, ModelRecord, ServingPolicy, VersionRecord};
use types::{Day, ModelName, TenantName};

use crate::{Registry, RegistryError};

/// The file in which jobs record where a version came from.
pub const LINEAGE_FILE: &str = "lineage.json";

/// Where a version came from, as its `lineage.json` records it (versions that were
/// imported rather than produced by a job have none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionLineage {
    /// The job that produced the version.
    pub job_id: Option<String>,
    /// `NAME:VERSION` of the versions it was trained or derived from.
    pub parents: Vec<String>,
    pub datasets: Vec<DatasetLineage>,
}

/// A dataset a version was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetLineage {
    pub name: Option<String>,
    /// SHA-256 (hex) of the dataset as uploaded.
    pub sha256: String,
    pub rows: Option<i64>,
}

/// The fields of `lineage.json` that lineage views use; the file holds more.
#[derive(Deserialize)]
struct LineageFile {
    #[serde(default)]
    job_id: Option<String>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
    #[serde(default)]
    dataset_rows: Option<i64>,
    #[serde(default)]
    parent_model: Option<String>,
}

impl Registry {
    /// Replaces the card of model `name` after checking it; only the model's tenant
    /// (or an admin) may.
    pub async fn set_card(
        &self,
        name: &ModelName,
        card: &ModelCard,
        caller: &Caller,
    ) -> Result<ModelRecord, RegistryError> {
        validate_card(card)?;
        Ok(self.store.set_card(caller, name, card).await?)
    }

    /// The lineage `version` records in its `lineage.json`, `None` when it has none.
    pub async fn lineage(
        &self,
        version: &VersionRecord,
    ) -> Result<Option<VersionLineage>, RegistryError> {
        if version.manifest.file(LINEAGE_FILE).is_none() {
            return Ok(None);
        }
        let bytes = self.file_bytes(version, LINEAGE_FILE).await?;
        let file: LineageFile = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Corrupt(format!("{LINEAGE_FILE}: {e}")))?;
        let datasets = file
            .dataset_digest
            .filter(|digest| !digest.is_empty())
            .map(|sha256| DatasetLineage {
                name: file.dataset,
                sha256,
                rows: file.dataset_rows,
            });
        Ok(Some(VersionLineage {
            job_id: file.job_id,
            parents: file.parent_model.into_iter().collect(),
            datasets: datasets.into_iter().collect(),
        }))
    }
}

/// Longest free-text card field, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest attribution, in characters: it rides on every response.
pub const MAX_ATTRIBUTION_CHARS: usize = 1024;
/// Longest licence expression, in bytes.
pub const MAX_LICENSE_LEN: usize = 256;

/// Why a tenant may not use a model under its card's terms; shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseDenied {
    #[error("the licence of model '{model}' does not permit tenant '{tenant}' to use it")]
    NotPermitted { model: String, tenant: String },
    #[error("the licence of model '{model}' does not allow commercial use, and tenant '{tenant}' is commercial")]
    NonCommercial { model: String, tenant: String },
    #[error("the licence of model '{model}' expired on {expired}")]
    Expired { model: String, expired: Day },
}

/// Parses a permitted-tenants list as users write it: `all` (`None`, every tenant) or
/// names separated by commas.
pub fn parse_permitted_tenants(text: &str) -> Result<Option<Vec<TenantName>>, RegistryError> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let names = text
        .split(',')
        .map(|name| TenantName::try_from(name.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RegistryError::InvalidCard(format!("permitted tenants: {e}")))?;
    Ok(Some(names))
}

/// Checks that `tenant` (with `policy`) may use `model` on `today` under its card:
/// the tenant is the model's own or in the permitted set, a commercial tenant uses
/// only models that allow commercial use, and the licence has not expired (it is valid
/// through its expiry date). Fields the card does not state restrict nothing.
pub fn check_terms(
    model: &ModelRecord,
    tenant: &TenantName,
    policy: &ServingPolicy,
    today: Day,
) -> Result<(), LicenseDenied> {
    let card = &model.card;
    if let Some(expired) = card.license_expires.filter(|last_day| today > *last_day) {
        return Err(LicenseDenied::Expired {
            model: model.name.to_string(),
            expired,
        });
    }
    if let Some(permitted) = &card.permitted_tenants {
        if &model.tenant != tenant && !permitted.contains(tenant) {
            return Err(LicenseDenied::NotPermitted {
                model: model.name.to_string(),
                tenant: tenant.to_string(),
            });
        }
    }
    if policy.commercial && card.commercial_use == Some(false) {
        return Err(LicenseDenied::NonCommercial {
            model: model.name.to_string(),
            tenant: tenant.to_string(),
        });
    }
    Ok(())
}

/// Checks what a card says before it is stored: the licence is a well-formed SPDX
/// expression, texts are bounded, the attribution is one line of printable text.
pub fn validate_card(card: &ModelCard) -> Result<(), RegistryError> {
    let invalid = |message: String| Err(RegistryError::InvalidCard(message));
    if let Some(license) = &card.license {
        if let Err(reason) = check_spdx(license) {
            return invalid(format!("license '{}': {reason}", printable(license)));
        }
    }
    let texts = [
        ("owner", &card.owner),
        ("description", &card.description),
        ("intended_use", &card.intended_use),
        ("out_of_scope_use", &card.out_of_scope_use),
    ];
    for (field, text) in texts {
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
        {
            return invalid(format!(
                "{field} is longer than {MAX_TEXT_CHARS} characters"
            ));
        }
    }
    if let Some(attribution) = &card.attribution {
        if attribution.trim().is_empty() {
            return invalid("attribution must not be empty; omit it instead".into());
        }
        if attribution.chars().count() > MAX_ATTRIBUTION_CHARS {
            return invalid(format!(
                "attribution is longer than {MAX_ATTRIBUTION_CHARS} characters"
            ));
        }
        if attribution.chars().any(char::is_control) {
            return invalid("attribution must be one line without control characters".into());
        }
    }
    Ok(())
}

/// Checks the syntax of an SPDX licence expression (SPDX 2.3, annex D): licence ids
/// (`[A-Za-z0-9.-]+`, optionally `+`, including `LicenseRef-…`) joined by `AND`/`OR`,
/// `WITH` an exception id, and parentheses. Ids are not checked against the SPDX
/// list, so new and custom licences (`LicenseRef-…`, Hugging Face's `other`) pass.
pub fn check_spdx(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_LICENSE_LEN {
        return Err(format!("longer than {MAX_LICENSE_LEN} characters"));
    }
    let tokens = spdx_tokens(expression)?;
    if tokens.is_empty() {
        return Err("empty; write an SPDX id such as apache-2.0".into());
    }
    let mut parser = SpdxParser { tokens, at: 0 };
    parser.or_expression()?;
    match parser.tokens.get(parser.at) {
        None => Ok(()),
        Some(token) => Err(format!("unexpected '{token}'")),
    }
}

fn spdx_tokens(expression: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in expression.chars() {
        match c {
            '(' | ')' | ' ' => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                if c != ' ' {
                    tokens.push(c.to_string());
                }
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':') => current.push(c),
            _ => return Err("an SPDX expression holds only letters, digits, '.', '-', '+', ':', spaces and parentheses".into()),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

struct SpdxParser {
    tokens: Vec<String>,
    at: usize,
}

impl SpdxParser {
    fn peek_operator(&self, operator: &str) -> bool {
        self.tokens
            .get(self.at)
            .is_some_and(|t| t.eq_ignore_ascii_case(operator))
    }

    fn or_expression(&mut self) -> Result<(), String> {
        self.and_expression()?;
        while self.peek_operator("OR") {
            self.at += 1;
            self.and_expression()?;
        }
        Ok(())
    }

    fn and_expression(&mut self) -> Result<(), String> {
        self.with_expression()?;
        while self.peek_operator("AND") {
            self.at += 1;
            self.with_expression()?;
        }
        Ok(())
    }

    fn with_expression(&mut self) -> Result<(), String> {
        self.atom()?;
        if self.peek_operator("WITH") {
            self.at += 1;
            let exception = self.next("an exception id after WITH")?;
            check_id(&exception, false)?;
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), String> {
        let token = self.next("a licence id")?;
        if token == "(" {
            self.or_expression()?;
            return match self.next("')'")?.as_str() {
                ")" => Ok(()),
                other => Err(format!("expected ')', found '{other}'")),
            };
        }
        check_id(&token, true)
    }

    fn next(&mut self, what: &str) -> Result<String, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| format!("expected {what} at the end"))?;
        self.at += 1;
        Ok(token)
    }
}

fn check_id(token: &str, plus_allowed: bool) -> Result<(), String> {
    let is_operator = ["AND", "OR", "WITH"]
        .iter()
        .any(|op| token.eq_ignore_ascii_case(op));
    let body = match token.strip_suffix('+') {
        Some(body) if plus_allowed => body,
        _ => token,
    };
    // ':' only joins a DocumentRef to a LicenseRef.
    let valid_body = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    };
    let valid = match body.split_once(':') {
        Some((document, license)) => {
            document.starts_with("DocumentRef-") && license.starts_with("LicenseRef-")
        }
        None => true,
    } && body.split(':').all(valid_body);
    if is_operator || !valid {
        return Err(format!("'{token}' is not a licence id"));
    }
    Ok(())
}

/// Text from a user as it may appear in an error message: bounded, one line.
fn printable(text: &str) -> String {
    text.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(card: ModelCard) -> ModelRecord {
        ModelRecord {
            id: 1,
            tenant: "owner".parse().unwrap(),
            name: "m".parse().unwrap(),
            shared: true,
            card,
            latest_version: Some(1),
            created_at: 0,
        }
    }

    #[test]
    fn licence_terms_deny_the_three_cases_and_nothing_else() {
        let day = |text: &str| text.parse::<Day>().unwrap();
        let today = day("2026-06-15");
        let commercial = ServingPolicy {
            commercial: true,
            require_signed_models: false,
        };
        let private = ServingPolicy::default();
        let check = |card: ModelCard, tenant: &str, policy: ServingPolicy| {
            check_terms(&model(card), &tenant.parse().unwrap(), &policy, today)
        };
        // A card that states nothing restricts nothing.
        assert_eq!(check(ModelCard::default(), "a", commercial), Ok(()));

        let only_a = ModelCard {
            permitted_tenants: Some(vec!["a".parse().unwrap()]),
            ..ModelCard::default()
        };
        assert_eq!(check(only_a.clone(), "a", private), Ok(()));
        assert_eq!(check(only_a.clone(), "owner", private), Ok(()));
        assert!(matches!(
            check(only_a, "b", private),
            Err(LicenseDenied::NotPermitted { .. })
        ));

        let non_commercial = ModelCard {
            commercial_use: Some(false),
            ..ModelCard::default()
        };
        assert_eq!(check(non_commercial.clone(), "a", private), Ok(()));
        assert!(matches!(
            check(non_commercial, "a", commercial),
            Err(LicenseDenied::NonCommercial { .. })
        ));
        let commercial_ok = ModelCard {
            commercial_use: Some(true),
            ..ModelCard::default()
        };
        assert_eq!(check(commercial_ok, "a", commercial), Ok(()));

        let expiring = |last: &str| ModelCard {
            license_expires: Some(day(last)),
            ..ModelCard::default()
        };
        assert_eq!(check(expiring("2026-06-15"), "a", private), Ok(()));
        let expired = check(expiring("2026-06-14"), "a", private).unwrap_err();
        assert_eq!(
            expired.to_string(),
            "the licence of model 'm' expired on 2026-06-14"
        );
    }

    #[test]
    fn cards_are_validated() {
        let ok = ModelCard {
            license: Some("apache-2.0".into()),
            attribution: Some("Built with Llama — © Meta".into()),
            ..ModelCard::default()
        };
        assert!(validate_card(&ok).is_ok());
        for bad in [
            ModelCard {
                license: Some("apache 2.0!".into()),
                ..ModelCard::default()
            },
            ModelCard {
                attribution: Some("two\nlines".into()),
                ..ModelCard::default()
            },
            ModelCard {
                attribution: Some(" ".into()),
                ..ModelCard::default()
            },
            ModelCard {
                description: Some("x".repeat(MAX_TEXT_CHARS + 1)),
                ..ModelCard::default()
            },
        ] {
            assert!(
                matches!(validate_card(&bad), Err(RegistryError::InvalidCard(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn spdx_expressions_are_checked_for_syntax() {
        let check = |expression: &str, ok: bool| {
            assert_eq!(check_spdx(expression).is_ok(), ok, "{expression}");
        };
        for good in [
            "apache-2.0",
            "MIT",
            "GPL-2.0+",
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
            "(MIT OR Apache-2.0) AND cc-by-4.0",
            "LicenseRef-my-licence",
            "DocumentRef-spdx:LicenseRef-x",
            "mit or apache-2.0",
            "other",
        ] {
            check(good, true);
        }
        for bad in [
            "",
            "  ",
            "MIT OR",
            "AND MIT",
            "(MIT",
            "MIT)",
            "MIT Apache-2.0",
            "MIT WITH",
            "MIT WITH x+",
            "apache 2.0!",
            "mit; rm -rf /",
            "a:b",
            "++",
        ] {
            check(bad, false);
        }
        check(&"a".repeat(MAX_LICENSE_LEN + 1), false);
    }
}
