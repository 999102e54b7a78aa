//! The Lambdas' configuration read from an SSM parameter on moto's server.

use aws_sdk_ssm::types::ParameterType;
use vicibridge_aws::config_source::{CONFIG_PARAMETER_ENV, ConfigSource, ConfigSourceError, read_parameter};
use vicibridge_core::config::CrmKind;
use vicibridge_tests::moto::{Moto, sdk_error};

const CONFIG: &str = "[vicidial]\nbase_url = \"https://dialer.example.com/\"\n\n[crm]\nkind = \"dry-run\"\n";

async fn put_parameter(moto: &Moto, name: &str, value: &str, kind: ParameterType) {
    moto.ssm()
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto PutParameter {name}: {}", sdk_error(&e)));
}

#[tokio::test]
async fn a_config_in_an_ssm_parameter_is_read_and_parsed() {
    let moto = Moto::start().await;
    put_parameter(&moto, "/vicibridge/config", CONFIG, ParameterType::String).await;

    let config = ConfigSource::SsmParameter("/vicibridge/config".into()).load_with(moto.sdk_config()).await.unwrap();

    assert_eq!(config.vicidial.base_url, "https://dialer.example.com");
    assert_eq!(config.crm.kind, CrmKind::DryRun);
}

#[tokio::test]
async fn a_secure_string_parameter_is_decrypted() {
    let moto = Moto::start().await;
    put_parameter(&moto, "/vicibridge/secure-config", CONFIG, ParameterType::SecureString).await;

    let config = read_parameter(&moto.ssm(), "/vicibridge/secure-config").await.unwrap();

    assert_eq!(config.vicidial.base_url, "https://dialer.example.com");
}

#[tokio::test]
async fn a_missing_parameter_is_named_in_the_error() {
    let moto = Moto::start().await;

    let err = read_parameter(&moto.ssm(), "/vicibridge/absent").await.unwrap_err();

    assert!(matches!(err, ConfigSourceError::ParameterNotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("/vicibridge/absent") && text.contains(CONFIG_PARAMETER_ENV), "{text}");
}

#[tokio::test]
async fn an_invalid_config_names_the_parameter_and_the_key() {
    let moto = Moto::start().await;
    let bad = "[vicidial]\nbase_url = \"dialer.example.com\"\n\n[crm]\nkind = \"dry-run\"\n";
    put_parameter(&moto, "/vicibridge/bad-config", bad, ParameterType::String).await;

    let err = read_parameter(&moto.ssm(), "/vicibridge/bad-config").await.unwrap_err();

    let text = err.to_string();
    assert!(text.contains("SSM parameter /vicibridge/bad-config"), "{text}");
    assert!(text.contains("vicidial.base_url"), "{text}");
}
