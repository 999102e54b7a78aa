//! Which queues an operator command works on: `serve`'s data dir, or the AWS stack's SQS
//! queues (by stack name or by URL). Shared by `reconcile`, `queue` and `dlq`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Args, Debug, Clone)]
pub struct QueueTarget {
    /// serve's data directory (the SQLite queues live there).
    #[arg(long, conflicts_with_all = ["stack", "queue_url"])]
    pub data_dir: Option<PathBuf>,
    /// The SAM stack's name: its queues are found by CloudFormation's generated names
    /// (`STACK-CrmEventsQueue-…`, `STACK-CrmEventsDLQ-…`, and the lead-injections pair).
    #[arg(long, conflicts_with = "queue_url")]
    pub stack: Option<String>,
    /// An SQS queue URL (the stack outputs CrmEventsQueueUrl); with --dlq-url for dlq commands.
    #[arg(long)]
    pub queue_url: Option<String>,
    /// The dead-letter queue's URL (the stack outputs CrmEventsDLQUrl).
    #[arg(long)]
    pub dlq_url: Option<String>,
    /// Which queue pair: the CRM events (calls, dispositions) or the lead injections.
    #[arg(long, value_enum, default_value_t = QueueName::CrmEvents)]
    pub queue: QueueName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueueName {
    CrmEvents,
    LeadInjections,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::CrmEvents => "crm-events",
            QueueName::LeadInjections => "lead-injections",
        }
    }

    pub fn db_file(self) -> &'static str {
        match self {
            QueueName::CrmEvents => vicibridge_local::serve::CRM_EVENTS_DB,
            QueueName::LeadInjections => vicibridge_local::serve::LEAD_INJECTIONS_DB,
        }
    }

    /// The logical ids in infra/template.yaml.
    fn logical_ids(self) -> (&'static str, &'static str) {
        match self {
            QueueName::CrmEvents => ("CrmEventsQueue", "CrmEventsDLQ"),
            QueueName::LeadInjections => ("LeadInjectionsQueue", "LeadInjectionsDLQ"),
        }
    }
}

/// A queue and its DLQ on SQS.
#[derive(Clone, Debug)]
pub struct SqsPair {
    pub queue: String,
    pub dlq: Option<String>,
}

pub enum Resolved {
    DataDir(PathBuf),
    Sqs { client: aws_sdk_sqs::Client, queues: SqsPair },
}

impl QueueTarget {
    pub async fn resolve(&self) -> Result<Resolved, String> {
        if let Some(dir) = &self.data_dir {
            return Ok(Resolved::DataDir(dir.clone()));
        }
        let client = aws_sdk_sqs::Client::new(vicibridge_aws::config_source::aws_config().await);
        if let Some(url) = &self.queue_url {
            return Ok(Resolved::Sqs { client, queues: SqsPair { queue: url.clone(), dlq: self.dlq_url.clone() } });
        }
        let Some(stack) = &self.stack else {
            return Err("say which queues: --data-dir DIR (serve), --stack NAME or --queue-url URL (AWS)".into());
        };
        let (queue_id, dlq_id) = self.queue.logical_ids();
        let queue = find_queue(&client, stack, queue_id).await?;
        let dlq = match &self.dlq_url {
            Some(url) => url.clone(),
            None => find_queue(&client, stack, dlq_id).await?,
        };
        Ok(Resolved::Sqs { client, queues: SqsPair { queue, dlq: Some(dlq) } })
    }
}

/// CloudFormation names a queue without a QueueName `STACK-LogicalId-RANDOM`.
async fn find_queue(client: &aws_sdk_sqs::Client, stack: &str, logical_id: &str) -> Result<String, String> {
    let prefix = format!("{stack}-{logical_id}-");
    let out = client
        .list_queues()
        .queue_name_prefix(&prefix)
        .send()
        .await
        .map_err(|e| format!("SQS ListQueues: {}", vicibridge_aws::config_source::sdk_error_message(&e)))?;
    let urls = out.queue_urls.unwrap_or_default();
    match urls.as_slice() {
        [url] => Ok(url.clone()),
        [] => Err(format!("no SQS queue named {prefix}… in this account and region: is the stack name right?")),
        _ => Err(format!("several SQS queues are named {prefix}…: pass --queue-url and --dlq-url")),
    }
}
