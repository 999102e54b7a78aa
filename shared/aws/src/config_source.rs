//! The configuration TOML read from an SSM parameter (or a file) at cold start.
//!
//! `VICIBRIDGE_CONFIG` (a file path) wins over `VICIBRIDGE_CONFIG_PARAMETER` (an SSM
//! parameter name or ARN), so one function can be pointed at a file bundled with it.

use std::fmt;
use std::path::PathBuf;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_types::SdkConfig;
use vicibridge_core::config::{Config, ConfigError, Severity};

use crate::limits::INIT;

/// Path of the configuration TOML file.
pub const CONFIG_ENV: &str = "VICIBRIDGE_CONFIG";
/// Name or ARN of the SSM parameter holding the configuration TOML.
pub const CONFIG_PARAMETER_ENV: &str = "VICIBRIDGE_CONFIG_PARAMETER";

#[derive(Debug, thiserror::Error)]
pub enum ConfigSourceError {
    #[error(
        "no configuration: set {CONFIG_ENV} to the path of the TOML file, or {CONFIG_PARAMETER_ENV} to the name of the SSM parameter that holds it"
    )]
    NotConfigured,
    #[error("{var} is not valid Unicode: set it to a plain SSM parameter name or ARN")]
    NotUnicode { var: &'static str },
    #[error("cannot read the configuration file {} (named by {CONFIG_ENV}): {source}", path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error(
        "SSM parameter {name} (named by {CONFIG_PARAMETER_ENV}) does not exist in this account and region: create it with the configuration TOML as its value, or fix the name"
    )]
    ParameterNotFound { name: String },
    #[error("cannot read SSM parameter {name} (named by {CONFIG_PARAMETER_ENV}): {message}{hint}")]
    ReadParameter { name: String, message: String, hint: &'static str },
    #[error("SSM parameter {name} (named by {CONFIG_PARAMETER_ENV}) has no value: put the configuration TOML in it")]
    EmptyParameter { name: String },
    #[error("the configuration in {origin} is invalid (check it with `vicibridge check-config`):\n{source}")]
    Invalid { origin: String, source: ConfigError },
}

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    SsmParameter(String),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "file {}", path.display()),
            ConfigSource::SsmParameter(name) => write!(f, "SSM parameter {name}"),
        }
    }
}

impl ConfigSource {
    /// From `VICIBRIDGE_CONFIG` / `VICIBRIDGE_CONFIG_PARAMETER`.
    pub fn from_env() -> Result<Self, ConfigSourceError> {
        let parameter = match std::env::var(CONFIG_PARAMETER_ENV) {
            Ok(name) => Some(name),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigSourceError::NotUnicode { var: CONFIG_PARAMETER_ENV });
            }
        };
        Self::from_values(std::env::var_os(CONFIG_ENV).map(PathBuf::from), parameter)
    }

    /// The choice `from_env` makes, on given values. Empty values count as unset, since a
    /// template parameter left blank arrives as an empty variable.
    pub fn from_values(file: Option<PathBuf>, parameter: Option<String>) -> Result<Self, ConfigSourceError> {
        if let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) {
            return Ok(ConfigSource::File(path));
        }
        match parameter.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()) {
            Some(name) => Ok(ConfigSource::SsmParameter(name)),
            None => Err(ConfigSourceError::NotConfigured),
        }
    }

    /// Reads and parses the configuration; an SSM parameter is read with [`aws_config`] and
    /// the cold-start call limits ([`INIT`]).
    pub async fn load(&self) -> Result<Config, ConfigSourceError> {
        match self {
            ConfigSource::File(path) => read_file(path).await,
            ConfigSource::SsmParameter(name) => read_parameter(&INIT.ssm(aws_config().await), name).await,
        }
    }

    /// Like [`ConfigSource::load`], with the given SDK configuration for SSM.
    pub async fn load_with(&self, sdk: &SdkConfig) -> Result<Config, ConfigSourceError> {
        match self {
            ConfigSource::File(path) => read_file(path).await,
            ConfigSource::SsmParameter(name) => read_parameter(&INIT.ssm(sdk), name).await,
        }
    }
}

/// The Lambdas' cold-start configuration: [`ConfigSource::from_env`], then load it.
pub async fn load_config() -> Result<Config, ConfigSourceError> {
    let source = ConfigSource::from_env()?;
    let config = source.load().await?;
    tracing::info!(source = %source, "configuration loaded");
    Ok(config)
}

pub async fn read_file(path: &std::path::Path) -> Result<Config, ConfigSourceError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| ConfigSourceError::ReadFile { path: path.to_owned(), source })?;
    parse(&text, &ConfigSource::File(path.to_owned()))
}

/// GetParameter (decrypted, so a SecureString works too) and parse.
pub async fn read_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<Config, ConfigSourceError> {
    let out = client.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
        let service = e.as_service_error();
        if matches!(service, Some(GetParameterError::ParameterNotFound(_))) {
            return ConfigSourceError::ParameterNotFound { name: name.to_owned() };
        }
        let hint = match service.and_then(|s| s.code()) {
            Some("AccessDeniedException") => {
                " (grant the function ssm:GetParameter on this parameter, and kms:Decrypt for a SecureString)"
            }
            _ => "",
        };
        ConfigSourceError::ReadParameter { name: name.to_owned(), message: sdk_error_message(&e), hint }
    })?;
    let text = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| ConfigSourceError::EmptyParameter { name: name.to_owned() })?;
    parse(text, &ConfigSource::SsmParameter(name.to_owned()))
}

fn parse(text: &str, source: &ConfigSource) -> Result<Config, ConfigSourceError> {
    let config =
        Config::from_toml(text).map_err(|e| ConfigSourceError::Invalid { origin: source.to_string(), source: e })?;
    // Warnings do not stop a cold start, but an operator should see them.
    for problem in config.problems().into_iter().filter(|p| p.severity == Severity::Warning) {
        tracing::warn!(source = %source, "{problem}");
    }
    Ok(config)
}

/// An SDK error as one line for an operator: AWS's error code and message for a service
/// error, else the chain of causes (connection refused, timeout, ...). Never the SDK's Debug
/// form (which `DisplayErrorContext` appends): it dumps the raw HTTP response, body included,
/// and a GetSecretValue body is the secret.
pub fn sdk_error_message<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    if let Some(service) = e.as_service_error() {
        let code = service.code().unwrap_or("unknown error");
        return match service.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`),
/// built once per process and shared by every client ([`crate::sdk::sdk_config`]).
pub async fn aws_config() -> &'static SdkConfig {
    crate::sdk::sdk_config()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_wins_over_parameter() {
        let source = ConfigSource::from_values(Some("/etc/vb.toml".into()), Some("/vb/config".into()));
        assert_eq!(source.unwrap(), ConfigSource::File("/etc/vb.toml".into()));
    }

    #[test]
    fn parameter_when_no_file() {
        let source = ConfigSource::from_values(Some("".into()), Some(" /vb/config ".into()));
        assert_eq!(source.unwrap(), ConfigSource::SsmParameter("/vb/config".into()));
    }

    #[test]
    fn nothing_set_names_both_variables() {
        let err = ConfigSource::from_values(None, Some(String::new())).unwrap_err().to_string();
        assert!(err.contains(CONFIG_ENV) && err.contains(CONFIG_PARAMETER_ENV), "{err}");
    }

    #[tokio::test]
    async fn missing_file_names_the_path_and_the_variable() {
        let err = read_file(std::path::Path::new("/nonexistent/vicibridge.toml")).await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/vicibridge.toml") && err.contains(CONFIG_ENV), "{err}");
    }
}
