//! The sampling API's JSON, as X-Ray SDKs send it to their daemon and as the X-Ray API
//! answers it (`POST /GetSamplingRules`, `POST /SamplingTargets`; PascalCase members,
//! timestamps as epoch seconds), and its conversion to and from aws-sdk-xray's types.

use std::collections::HashMap;

use aws_sdk_xray::operation::get_sampling_rules::GetSamplingRulesOutput;
use aws_sdk_xray::operation::get_sampling_targets::GetSamplingTargetsOutput;
use aws_sdk_xray::types::{SamplingRule, SamplingStatisticsDocument};
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};

// === GetSamplingRules ===

/// `POST /GetSamplingRules` body (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesRequest {
    /// Pagination token of a previous answer.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// `GetSamplingRules` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesResponse {
    /// The rules.
    #[serde(default)]
    pub sampling_rule_records: Vec<SamplingRuleRecord>,
    /// Token of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A rule and when it was made and changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRuleRecord {
    /// The rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rule: Option<Rule>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<f64>,
}

/// A sampling rule, with the members SDKs read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rule {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Its ARN.
    #[serde(rename = "RuleARN", default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// Matches the resource ARN (`*`).
    #[serde(rename = "ResourceARN", default)]
    pub resource_arn: String,
    /// Lower is evaluated first.
    #[serde(default)]
    pub priority: i32,
    /// Share of requests sampled beyond the reservoir.
    #[serde(default)]
    pub fixed_rate: f64,
    /// Requests per second sampled before the fixed rate applies.
    #[serde(default)]
    pub reservoir_size: i32,
    /// Matches the service name.
    #[serde(default)]
    pub service_name: String,
    /// Matches the service type (`origin`).
    #[serde(default)]
    pub service_type: String,
    /// Matches the host.
    #[serde(default)]
    pub host: String,
    /// Matches the method.
    #[serde(rename = "HTTPMethod", default)]
    pub http_method: String,
    /// Matches the path.
    #[serde(rename = "URLPath", default)]
    pub url_path: String,
    /// Rule format version (1).
    #[serde(default)]
    pub version: i32,
    /// Matches segment attributes.
    #[serde(default)]
    pub attributes: HashMap<String, String>,
}

/// A `GetSamplingRules` answer of aws-sdk-xray in the API's JSON.
pub fn rules_response(output: &GetSamplingRulesOutput) -> GetSamplingRulesResponse {
    GetSamplingRulesResponse {
        sampling_rule_records: output
            .sampling_rule_records()
            .iter()
            .map(|record| SamplingRuleRecord {
                sampling_rule: record.sampling_rule().map(rule),
                created_at: record.created_at().map(DateTime::as_secs_f64),
                modified_at: record.modified_at().map(DateTime::as_secs_f64),
            })
            .collect(),
        next_token: output.next_token().map(str::to_owned),
    }
}

/// One rule in the API's JSON.
fn rule(rule: &SamplingRule) -> Rule {
    Rule {
        rule_name: rule.rule_name().map(str::to_owned),
        rule_arn: rule.rule_arn().map(str::to_owned),
        resource_arn: rule.resource_arn().to_owned(),
        priority: rule.priority(),
        fixed_rate: rule.fixed_rate(),
        reservoir_size: rule.reservoir_size(),
        service_name: rule.service_name().to_owned(),
        service_type: rule.service_type().to_owned(),
        host: rule.host().to_owned(),
        http_method: rule.http_method().to_owned(),
        url_path: rule.url_path().to_owned(),
        version: rule.version(),
        attributes: rule.attributes().cloned().unwrap_or_default(),
    }
}

// === GetSamplingTargets ===

/// `POST /SamplingTargets` body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingTargetsRequest {
    /// One per rule the SDK used since its last report.
    #[serde(default)]
    pub sampling_statistics_documents: Vec<StatisticsDocument>,
}

/// What an SDK counted for one rule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticsDocument {
    /// The rule.
    pub rule_name: String,
    /// The SDK instance.
    #[serde(rename = "ClientID")]
    pub client_id: String,
    /// When, epoch seconds.
    pub timestamp: f64,
    /// Requests matched.
    #[serde(default)]
    pub request_count: i32,
    /// Requests sampled.
    #[serde(default)]
    pub sampled_count: i32,
    /// Requests sampled by borrowing from the reservoir.
    #[serde(default)]
    pub borrow_count: i32,
}

/// `GetSamplingTargets` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingTargetsResponse {
    /// New quotas and rates.
    #[serde(default)]
    pub sampling_target_documents: Vec<TargetDocument>,
    /// When a rule last changed, epoch seconds (SDKs refetch rules when it moves).
    #[serde(default)]
    pub last_rule_modification: f64,
    /// Statistics X-Ray could not use.
    #[serde(default)]
    pub unprocessed_statistics: Vec<UnprocessedStatistics>,
}

/// A rule's new quota and rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetDocument {
    /// The rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// The rate to apply.
    #[serde(default)]
    pub fixed_rate: f64,
    /// Requests per second this SDK may sample from the reservoir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir_quota: Option<i32>,
    /// Until when the quota holds, epoch seconds.
    #[serde(
        rename = "ReservoirQuotaTTL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reservoir_quota_ttl: Option<f64>,
    /// Seconds until the next report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
}

/// Statistics X-Ray refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnprocessedStatistics {
    /// The rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The SDK's statistics as aws-sdk-xray documents.
///
/// # Errors
/// A message naming the document that lacks a required member.
pub fn statistics(
    request: &GetSamplingTargetsRequest,
) -> Result<Vec<SamplingStatisticsDocument>, String> {
    request
        .sampling_statistics_documents
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            SamplingStatisticsDocument::builder()
                .rule_name(&doc.rule_name)
                .client_id(&doc.client_id)
                .timestamp(DateTime::from_secs_f64(doc.timestamp))
                .request_count(doc.request_count)
                .sampled_count(doc.sampled_count)
                .borrow_count(doc.borrow_count)
                .build()
                .map_err(|e| format!("SamplingStatisticsDocuments[{i}]: {e}"))
        })
        .collect()
}

/// A `GetSamplingTargets` answer of aws-sdk-xray in the API's JSON.
pub fn targets_response(output: &GetSamplingTargetsOutput) -> GetSamplingTargetsResponse {
    GetSamplingTargetsResponse {
        sampling_target_documents: output
            .sampling_target_documents()
            .iter()
            .map(|doc| TargetDocument {
                rule_name: doc.rule_name().map(str::to_owned),
                fixed_rate: doc.fixed_rate(),
                reservoir_quota: doc.reservoir_quota(),
                reservoir_quota_ttl: doc.reservoir_quota_ttl().map(DateTime::as_secs_f64),
                interval: doc.interval(),
            })
            .collect(),
        last_rule_modification: output
            .last_rule_modification()
            .map_or(0.0, DateTime::as_secs_f64),
        unprocessed_statistics: output
            .unprocessed_statistics()
            .iter()
            .map(|u| UnprocessedStatistics {
                rule_name: u.rule_name().map(str::to_owned),
                error_code: u.error_code().map(str::to_owned),
                message: u.message().map(str::to_owned),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the Python SDK's botocore client sends for targets (integer timestamps).
    #[test]
    fn parses_sdk_statistics() {
        let request: GetSamplingTargetsRequest = serde_json::from_str(
            r#"{"SamplingStatisticsDocuments": [{"RuleName": "r", "ClientID": "c0ffee",
                "RequestCount": 3, "BorrowCount": 1, "SampledCount": 2, "Timestamp": 1764000000}]}"#,
        )
        .unwrap();
        let docs = statistics(&request).unwrap();
        assert_eq!(docs[0].rule_name(), "r");
        assert_eq!(docs[0].client_id(), "c0ffee");
        assert_eq!(docs[0].timestamp().secs(), 1_764_000_000);
        assert_eq!(
            (
                docs[0].request_count(),
                docs[0].sampled_count(),
                docs[0].borrow_count()
            ),
            (3, 2, 1)
        );
    }

    /// Rules serialise with the API's member names.
    #[test]
    fn rules_use_api_member_names() {
        let json = serde_json::to_value(Rule {
            rule_name: Some("Default".into()),
            resource_arn: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            version: 1,
            ..Rule::default()
        })
        .unwrap();
        for key in [
            "RuleName",
            "ResourceARN",
            "HTTPMethod",
            "URLPath",
            "FixedRate",
            "ReservoirSize",
            "Version",
            "Attributes",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json.get("RuleARN").is_none());
    }
}
